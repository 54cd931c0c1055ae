"""Request and response bodies, named by role (``JobCreate``, ``JobPublic``...)."""

"""Installing a new build of the executable agent: the install directory's layout
(``layout``), and the self-update that downloads, verifies and swaps builds."""

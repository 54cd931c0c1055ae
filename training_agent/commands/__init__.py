"""The one-shot commands behind ``cli.py``, one module each (``cli.py`` only parses).

| module | commands |
|---|---|
| ``status`` | ``status``, ``drain``, ``resume``, ``cancel`` (through the local status API) |
| ``dashboard`` | ``dashboard``, ``setup``, ``start --dashboard``, a start without arguments |
| ``login`` | ``login``, ``logout`` |
| ``install`` | ``install``, ``uninstall`` (and the double-click setup screen's install) |
| ``enrollment`` | the install step that trades an enrollment token for an API key |
| ``service`` | ``service install|uninstall|start|stop|restart|status|logs|run`` |
| ``doctor`` | ``doctor`` (``doctor_probe``: the one poll its checks share) |
| ``runtime_setup`` | ``runtime setup`` (the built-in trainer's managed venv) |
| ``demo`` | ``demo`` |
| ``version`` | ``version`` |

``start`` runs the daemon itself (``training_agent.agent``).
"""

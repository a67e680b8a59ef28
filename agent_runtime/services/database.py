"""The service API's first import path, kept for the code that uses it.

The module is `agent_runtime.service_api`, which sits above the event hub (for
`wait_for_decision`); this one module of `services/` reaches up to it, and the import
contract names it as the one exception. At run time this path *is* that module (every
attribute, and monkeypatching, as before); type checkers see its `__all__`.
"""

import sys

from agent_runtime import service_api
from agent_runtime.service_api import *  # noqa: F403
from agent_runtime.service_api import __all__  # noqa: F401

sys.modules[__name__] = service_api

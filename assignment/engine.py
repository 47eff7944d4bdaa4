"""The assignment engine (docs/api.md §2) lives in the Python client, `variantlab_client.engine`.

One implementation serves both the server and apps evaluating locally, so the two cannot drift;
this module keeps the contract's `from assignment.engine import ...` path working.
"""

from variantlab_client.engine import *  # noqa: F403
from variantlab_client.engine import __all__  # noqa: F401

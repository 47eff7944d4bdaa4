"""GrowthBook's condition language lives in the Python client (`variantlab_client.conditions`)."""

from variantlab_client.conditions import *  # noqa: F403
from variantlab_client.conditions import __all__  # noqa: F401

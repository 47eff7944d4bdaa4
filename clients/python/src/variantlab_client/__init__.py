"""Variantlab's Python client: local assignment, batched events, graceful degradation.

from variantlab_client import Client

client = Client("https://variantlab.example.com", api_key)
variant = client.assign("user-42", {"country": "US"}, ["search-ranker"])["search-ranker"]
"""

from variantlab_client.client import FALLBACK, Client, ModelCall
from variantlab_client.engine import Assignment

__all__ = ["FALLBACK", "Assignment", "Client", "ModelCall"]

from django.urls import path

from events.apis import EventsApi

# A full path, mounted first in config/urls.py with the other machine-API paths.
urlpatterns = [path("api/v1/events", EventsApi.as_view(), name="events")]

"""Fleet: the county's central service for the devices of its service centers.

It ingests presence, health, ticket and rating events from the county MQTT
broker into a database and serves a JSON API and a dashboard over them.
Nothing is created at import time: `fleet.app.create_app(settings)` wires it.
"""

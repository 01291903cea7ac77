"""The workspace: the web console and HTTP API for the people who work the requests (issue 12)."""

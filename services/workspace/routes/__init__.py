"""The workspace's HTTP routes, one ``APIRouter`` per area, composed by
:func:`services.workspace.web.build_web`.

- :mod:`.context`: what every route shares (the :class:`~.context.WebContext` on ``app.state``, the
  person dependencies, rendering) and the errors they raise;
- :mod:`.sign_in`: the sign-in page, sign-out, single sign-on (OIDC);
- :mod:`.pages`: the console's pages (queues, a request, approvals inbox, dashboard, tokens);
- :mod:`.console_actions`: the request page's forms, one small function per action;
- :mod:`.live_updates`: server-sent events for open pages;
- :mod:`.api`: the JSON API under ``/api`` (what OpenAPI publishes), with its models in :mod:`.models`;
- :mod:`.reads`: the reads pages and API share (queue rows, a record, the inbox, dashboard figures).

``/health``, ``/health/live`` and ``/metrics`` are not here: the FastStream app answers them
(:class:`services.workspace.app.OnePort`).
"""

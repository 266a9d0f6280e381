"""The auditor's HTTP API: read-only answers over the index, JSON and CSV.

``auditor.api.app.create_app(ctx)`` builds it; ``ServiceContext`` carries what the
routes share. See ``auditor.query`` for the questions themselves.
"""

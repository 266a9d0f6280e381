"""Server-rendered pages for regulators (and members, who see only their own tasks).

Jinja2 templates and one CSS file shipped as package data; no JavaScript at all. Pages
read the index only through ``auditor.query`` and verifications only through
``auditor.service``, so what a page shows is exactly what the JSON API answers.
"""

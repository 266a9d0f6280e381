"""The pages' routes: sign-in, task search, a task's page and verification, usage,
refusals, organisations and datasets.

Every page reads the index through ``auditor.query`` (the same functions as the JSON
API, so a page and its export always agree) inside one connection, and states up to
which block it is complete. Members other than regulators see only tasks their
organisation created or took part in, and only their own usage: the API's rule, applied
here through the same ``visible_to`` / ``task_orgs`` arguments. A task a member may not
see is "not found", exactly like one that does not exist.
"""

from __future__ import annotations

from fastapi import APIRouter

from auditor.pages import overview_pages, signin, task_pages

router = APIRouter(include_in_schema=False)
router.include_router(signin.router)
router.include_router(task_pages.router)
router.include_router(overview_pages.router)

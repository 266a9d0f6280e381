"""Sign-in for the auditor's API: an EIP-712 challenge signed by a registered member key,
exchanged for a short-lived bearer token that names the member's organisation.

Modules: ``principal`` (who a request is from), ``challenge`` (the typed data to sign),
``registry`` (who is registered, read from the index), ``sessions`` (challenges and
tokens), ``fastapi`` (the request dependency), ``client`` (signing in from Python).
"""

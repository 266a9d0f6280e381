"""Anonymous lookups inside a node process: config, persistence, roles, loops and verbs.

``node/lookup/rpc/`` put the peer plane between the lookup roles; this package makes
them behaviour of a running node (`provnet node run` with a ``lookup`` config section):

* ``settings`` — :class:`LookupSettings`, the ``lookup`` section of ``node.json``;
* ``errors`` — the named refusals the REST API and CLI show;
* ``files`` — what must survive a restart besides the database (pending lists, key
  shares, the relay's built epoch, settlements), written atomically under the data dir;
* ``grants`` — the relay's check of a querier's grant on chain, crediting the meter;
* ``provider`` — a provider's epoch steps, run when the list's relay asks;
* ``epochs`` — the relay's one-command epoch: deal, publish, build, anchor, accept;
* ``queries`` — the querier: the chain's current epoch, the download, the answers;
* ``screens`` — bulk screening jobs with progress;
* ``loops`` — query-log checkpoints and usage settlement on chain;
* ``audit`` — the regulator's count of queries per organisation and day;
* ``roles`` — :class:`LookupNode`, which builds all of it from a config.

Only ``settings`` is imported by ``node.config``; the rest loads with the node.
"""

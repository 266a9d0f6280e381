"""Protocol building blocks on vetted primitives (DESIGN §2, §6).

Nothing here implements a primitive: key agreement, key derivation, stream ciphers and
secret sharing come from ``cryptography`` and ``pycryptodome``. The modules only fix how
the protocols of ``node/algorithms`` use them (labels, lengths, encodings), so that
every party derives byte-identical values and each choice is written down once.
"""

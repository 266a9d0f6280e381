"""Anonymous (double-blind) blacklist lookup, DESIGN §6: the epoch union and its queries."""

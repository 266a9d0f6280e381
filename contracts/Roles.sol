// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Organisation roles in the provnet consortium, as bits of a `uint8` mask.
// File-level constants (not a library) so that no deployable artifact is produced.

/// @dev The organisation offers datasets.
uint8 constant ROLE_PROVIDER = 1;

/// @dev The organisation starts jobs on other organisations' data.
uint8 constant ROLE_CONSUMER = 2;

/// @dev The organisation may run jobs for others (e.g. a TEE host or an aggregator).
uint8 constant ROLE_COMPUTE = 4;

/// @dev The organisation may read evidence (never data) and audit the network.
uint8 constant ROLE_REGULATOR = 8;

/// @dev Every defined role bit; a roles mask must be non-zero and within it.
uint8 constant ROLE_MASK = ROLE_PROVIDER | ROLE_CONSUMER | ROLE_COMPUTE | ROLE_REGULATOR;

//! Tests of lowering and of the proofs on plans.

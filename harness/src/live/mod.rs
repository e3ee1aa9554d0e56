//! The live executor: drives a real IUT over MTPSync, MTPAsync and its test-control interface.

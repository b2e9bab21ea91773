//! Shared fixtures for the criterion benches (messages used by several benches).

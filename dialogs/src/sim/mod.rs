//! Flow simulator (filled in below).

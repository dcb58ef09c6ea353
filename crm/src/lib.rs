//! Customer directory over the local cache of CRM data (later: Zoho OAuth + sync).
//!
//! It never talks to callers and never issues SQL itself: storage goes through `store`.

//! Typed ids. Every row id is a text UUIDv7, but a call's id and a tenant's id are not
//! interchangeable: each has its own type, so a tenant id can never be passed where a call id
//! is expected (and the compiler says so), across every crate that uses the store. They bind
//! and decode as the TEXT they are stored as.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Default,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            Serialize,
            Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new, time-ordered id (UUIDv7): ordering by id approximates ordering by
            /// creation.
            pub fn generate() -> Self {
                Self(crate::new_id())
            }

            /// An id as stored or as given in a request. Not validated: an id that names
            /// nothing simply finds nothing.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_id!(
    /// A call's id (`calls.id`), chosen when the call is set up so that its writes can be
    /// queued before its row lands.
    CallId
);

text_id!(
    /// A tenant's id (`tenants.id`): the business a number, key, customer or call belongs to.
    TenantId
);

text_id!(
    /// An outbound campaign's id (`campaigns.id`).
    CampaignId
);

text_id!(
    /// A campaign contact's id (`campaign_contacts.id`): one number to call in one campaign.
    ContactId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_serialise_as_plain_strings() {
        let a = CallId::generate();
        let b = CallId::generate();
        assert!(a < b, "UUIDv7 ids sort by creation");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{a}\""));
        let back: CallId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        assert_eq!(TenantId::new("t1"), "t1");
    }
}

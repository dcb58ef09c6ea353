//! Seeding the fake CRM: Contacts and Leads, changes that bump `Modified_Time`, deletions to
//! the recycle bin (listed by `/deleted`), and the Calls records it received.

use serde_json::{Map, Value, json};

use super::FakeZoho;
use super::Person;
use super::crm::{id_num, module_map, module_map_mut, time_of};

impl FakeZoho {
    /// Seeds a Contact; returns its id. Modified now on the fake's clock.
    pub fn add_contact(&self, person: &Person) -> String {
        self.add_record("Contacts", person)
    }

    /// Seeds a Lead; returns its id.
    pub fn add_lead(&self, person: &Person) -> String {
        self.add_record("Leads", person)
    }

    fn add_record(&self, module: &str, p: &Person) -> String {
        let mut s = self.shared.lock();
        let id = s.next_id(4_876_876_000_000_000_000);
        let now = s.tick();
        let mut r = Map::new();
        r.insert("id".into(), json!(id));
        r.insert("First_Name".into(), json!(p.first_name));
        r.insert("Last_Name".into(), json!(p.last_name));
        r.insert(
            "Full_Name".into(),
            json!(format!("{} {}", p.first_name, p.last_name).trim()),
        );
        r.insert("Email".into(), json!(p.email));
        r.insert("Phone".into(), json!(p.phone));
        r.insert("Mobile".into(), json!(p.mobile));
        if module == "Contacts" {
            r.insert(
                "Account_Name".into(),
                p.company.as_ref().map_or(
                    Value::Null,
                    |c| json!({"name": c, "id": "4876876000000624001"}),
                ),
            );
            r.insert("Mailing_Zip".into(), json!(p.zip));
        } else {
            r.insert("Company".into(), json!(p.company));
            r.insert("Zip_Code".into(), json!(p.zip));
        }
        r.insert("Created_Time".into(), json!(now));
        r.insert("Modified_Time".into(), json!(now));
        let key = (s.clock, id_num(&r));
        if let Some(map) = module_map_mut(&mut s, module) {
            map.insert(id.clone(), r);
        }
        s.by_mtime
            .entry(module.to_owned())
            .or_default()
            .insert(key, id.clone());
        id
    }

    /// Sets a field of a record (a JSON value) and bumps its `Modified_Time`.
    pub fn update_record(&self, module: &str, id: &str, field: &str, value: Value) {
        let mut s = self.shared.lock();
        let now = s.tick();
        let clock = s.clock;
        let mut moved = None;
        if let Some(r) = module_map_mut(&mut s, module).and_then(|m| m.get_mut(id)) {
            moved = Some((time_of(r, "Modified_Time"), id_num(r)));
            r.insert(field.to_owned(), value);
            r.insert("Modified_Time".into(), json!(now));
        }
        if let Some((old, n)) = moved {
            let index = s.by_mtime.entry(module.to_owned()).or_default();
            index.remove(&(old, n));
            index.insert((clock, n), id.to_owned());
        }
    }

    /// Deletes a record to the recycle bin (listed by `/deleted`).
    pub fn delete_record(&self, module: &str, id: &str) {
        let mut s = self.shared.lock();
        let now = s.tick();
        let removed = module_map_mut(&mut s, module).and_then(|m| m.remove(id));
        if let Some(r) = removed {
            let key = (time_of(&r, "Modified_Time"), id_num(&r));
            if let Some(index) = s.by_mtime.get_mut(module) {
                index.remove(&key);
            }
            let entry = json!({"deleted_by": {"name": "Patricia Boyle", "id": "4876876000000327001"},
                "id": id, "display_name": r.get("Full_Name").cloned().unwrap_or(Value::Null),
                "type": "recycle", "created_by": {"name": "Patricia Boyle", "id": "4876876000000327001"},
                "deleted_time": now});
            s.deleted.push((module.to_owned(), entry));
        }
    }

    /// The stored record, as the API would return it with every field.
    pub fn crm_record(&self, module: &str, id: &str) -> Option<Value> {
        let s = self.shared.lock();
        module_map(&s, module)?.get(id).cloned().map(Value::Object)
    }

    /// Calls records created through `POST /crm/v8/Calls`, in order.
    pub fn calls(&self) -> Vec<Value> {
        self.shared.lock().calls.clone()
    }
}

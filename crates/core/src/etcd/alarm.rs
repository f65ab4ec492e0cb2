//! The `alarm` bucket: its keys are `etcdserverpb.AlarmMember` protobufs (etcd@v3.4
//! `etcdserver/api/v3alarm/alarms.go`), its values empty.

use super::kv::varint;
use crate::error::Result;
use crate::reader::{Bucket, Db};

/// The bucket etcd keeps its alarms in (etcd@v3.4 `etcdserver/api/v3alarm/alarms.go`).
pub const ALARM_BUCKET: &[u8] = b"alarm";

#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct Alarm {
    /// Member id, lowercase hex as etcdctl prints it.
    pub member_id: String,
    /// `NONE`, `NOSPACE`, `CORRUPT`, or the number.
    pub alarm: String,
}

impl Alarm {
    /// "mvcc: database space exceeded": the member refuses writes until it is disarmed.
    pub fn is_nospace(&self) -> bool {
        self.alarm == "NOSPACE"
    }
}

/// The active alarms: each entry of the `alarm` bucket (its key, decoded), in key order.
/// A file without the bucket has none.
pub fn alarm_entries(db: &Db) -> Result<Vec<(&[u8], Alarm)>> {
    let mut v = Vec::new();
    if let Some(b) = Bucket::root_of(db).bucket(ALARM_BUCKET)? {
        for e in b.iter() {
            let e = e?;
            v.push((e.key, decode_alarm(e.key)));
        }
    }
    Ok(v)
}

/// `etcdserverpb.AlarmMember` {memberID = 1, alarm = 2}, the `alarm` bucket's keys.
pub fn decode_alarm(b: &[u8]) -> Alarm {
    let (mut id, mut kind, mut at) = (0u64, 0u64, 0usize);
    while at < b.len() {
        let Ok(tag) = varint(b, &mut at) else { break };
        if tag & 7 != 0 {
            break;
        }
        let Ok(v) = varint(b, &mut at) else { break };
        match tag >> 3 {
            1 => id = v,
            2 => kind = v,
            _ => {}
        }
    }
    Alarm {
        member_id: format!("{id:x}"),
        alarm: match kind {
            0 => "NONE".into(),
            1 => "NOSPACE".into(),
            2 => "CORRUPT".into(),
            n => n.to_string(),
        },
    }
}

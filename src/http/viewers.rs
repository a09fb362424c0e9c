//! Counts open streams, overall and per camera, so a crowd of viewers (or
//! one client opening streams in a loop) cannot exhaust a small box.

use super::reply::Reply;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Viewers {
    /// Open streams per printer id; the total is their sum.
    open: Mutex<HashMap<i64, usize>>,
    /// Streams refused by the limits, for the metrics.
    refused: AtomicUsize,
}

/// An admitted viewer's place; given back when dropped (also on panic).
pub struct Pass<'a> {
    viewers: &'a Viewers,
    id: i64,
}

impl Viewers {
    /// A place for one more viewer of printer `id`, or a 503 saying which
    /// limit was reached.
    pub fn admit(
        &self,
        id: i64,
        max_total: usize,
        max_per_camera: usize,
    ) -> Result<Pass<'_>, Reply> {
        let mut open = super::lock(&self.open);
        let total: usize = open.values().sum();
        let here = open.get(&id).copied().unwrap_or(0);
        if total >= max_total || here >= max_per_camera {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        if total >= max_total {
            return Err(busy(&format!(
                "too many viewers ({max_total} streams are open); try again later"
            )));
        }
        if here >= max_per_camera {
            return Err(busy(&format!(
                "too many viewers of this camera ({max_per_camera} streams are open); try again later"
            )));
        }
        open.insert(id, here + 1);
        Ok(Pass { viewers: self, id })
    }

    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn total(&self) -> usize {
        super::lock(&self.open).values().sum()
    }
}

fn busy(msg: &str) -> Reply {
    Reply::detail(503, msg).with_header("Retry-After", "5".into())
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut open = super::lock(&self.viewers.open);
        if let Some(n) = open.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_overall_and_per_camera_and_free_on_drop() {
        let v = Viewers::default();
        let a1 = v.admit(1, 3, 2).ok().unwrap();
        let _a2 = v.admit(1, 3, 2).ok().unwrap();
        assert_eq!(v.admit(1, 3, 2).err().map(|r| r.status), Some(503));
        let _b1 = v.admit(2, 3, 2).ok().unwrap();
        assert_eq!(v.admit(3, 3, 2).err().map(|r| r.status), Some(503));
        assert_eq!(v.total(), 3);
        drop(a1);
        assert!(v.admit(1, 3, 2).is_ok());
        assert_eq!(v.total(), 2);
    }
}

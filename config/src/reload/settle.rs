//! When the watcher reads the files: it compares their metadata, never their bytes, and reads a change only once
//! it has held still for [`SETTLE_POLLS`] polls in a row, so a file an editor is still writing is not read half-way.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// How many consecutive polls must see a changed file unchanged before the watcher reads it: the change has then
/// held still for at least two whole `watch_interval_ms`, far longer than an editor takes between the writes of
/// one save.
pub const SETTLE_POLLS: u32 = 3;

/// What the watcher compares: the routing file's and the key file's stamps (`None`: cannot be read).
pub(super) type Stamps = (Option<Stamp>, Option<Stamp>);

/// A file's identity and shape, read without opening it: any write, truncation or rename over it changes at least
/// one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// The watcher's memory of the files.
#[derive(Debug)]
pub(super) struct Watch {
    /// The files as they were when last read, whether the load succeeded or not: a bad file is reported once.
    read: Stamps,
    /// A change seen but not yet read: how the files look, and how many polls in a row saw that.
    settling: Option<(Stamps, u32)>,
}

// === impl Watch ===

impl Watch {
    /// The files were just read as `stamps` (stamped before reading: a write that lands during the read changes
    /// the stamp, so it is read again).
    pub(super) fn new(stamps: Stamps) -> Self {
        Self {
            read: stamps,
            settling: None,
        }
    }

    /// The files were read again (a reload, whatever its outcome), as `stamps`.
    pub(super) fn read_as(&mut self, stamps: Stamps) {
        self.read = stamps;
        self.settling = None;
    }

    /// One poll that saw `now`: whether to read the files, i.e. they differ from when they were last read and
    /// have looked the same for [`SETTLE_POLLS`] polls in a row.
    pub(super) fn poll(&mut self, now: Stamps) -> bool {
        if now == self.read {
            self.settling = None;
            return false;
        }
        let polls = match self.settling {
            Some((seen, polls)) if seen == now => polls + 1,
            _ => 1,
        };
        self.settling = Some((now, polls));
        polls >= SETTLE_POLLS
    }
}

/// The stamps of the routing file and of the key file, when there is one.
pub(super) fn stamps(routing_file: &Path, key_file: Option<&Path>) -> Stamps {
    (stamp(routing_file), key_file.and_then(stamp))
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.size(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        ctime: (meta.ctime(), meta.ctime_nsec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(len: u64) -> Stamps {
        let s = Stamp {
            dev: 1,
            ino: 2,
            len,
            mtime: (0, 0),
            ctime: (0, 0),
        };
        (Some(s), None)
    }

    #[test]
    fn a_change_is_read_once_it_has_held_still_for_three_polls() {
        let mut w = Watch::new(at(10));
        assert!(!w.poll(at(10)), "unchanged");
        // A save in progress: the file keeps changing, so it is never read.
        for len in [0, 5, 8] {
            assert!(!w.poll(at(len)), "still changing at {len}");
        }
        assert!(!w.poll(at(12)));
        assert!(!w.poll(at(12)));
        assert!(w.poll(at(12)), "settled on the third poll");
        w.read_as(at(12));
        assert!(!w.poll(at(12)), "read once");
        // Changed and changed back before settling: nothing to read.
        assert!(!w.poll(at(3)));
        assert!(!w.poll(at(12)));
        assert!(!w.poll(at(12)));
        // A file that cannot be read counts as a change too (its reload then reports why, once).
        let gone = (None, None);
        assert!(!w.poll(gone) && !w.poll(gone) && w.poll(gone));
    }
}

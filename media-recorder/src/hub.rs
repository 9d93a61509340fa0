//! The registry of media actors: one per inspection with live media, started on its first
//! offer (or `finish`), unloaded when idle. Calls for an inspection go to its actor's inbox;
//! `finish` then builds the recording on a blocking thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::actor::{self, Ctx};
use crate::api::{MediaConfig, MediaError, MediaEvent, MediaRole};
use crate::chapters::{read_marks, Mark};
use crate::finalize::{finalize_inspection, read_manifest, Manifest};
use crate::inbox::{FinishReady, RoomMsg};
use crate::writer::{Job, Writer};

struct RoomHandle {
    inbox: mpsc::UnboundedSender<RoomMsg>,
    instance: u64,
}

/// The hub behind [`crate::MediaHub`].
pub(crate) struct Hub {
    ctx: Arc<Ctx>,
    rooms: Mutex<HashMap<Uuid, RoomHandle>>,
    next_instance: AtomicU64,
    /// One `finish` at a time per inspection, so that a second call finds the first's manifest.
    finishing: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    me: Weak<Hub>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the map itself stays consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    pub(crate) fn new(cfg: MediaConfig) -> std::io::Result<Arc<Self>> {
        let writer = Writer::start()?;
        Ok(Arc::new_cyclic(|me| Hub {
            ctx: Arc::new(Ctx {
                cfg: Arc::new(cfg),
                writer,
                peers: AtomicUsize::new(0),
                next_journal: AtomicU64::new(1),
                seen: Default::default(),
                uplinks: Default::default(),
            }),
            rooms: Mutex::new(HashMap::new()),
            next_instance: AtomicU64::new(1),
            finishing: Mutex::new(HashMap::new()),
            me: me.clone(),
        }))
    }

    pub(crate) fn cfg(&self) -> &MediaConfig {
        &self.ctx.cfg
    }

    fn dir(&self, inspection: Uuid) -> PathBuf {
        self.ctx.cfg.recordings_dir.join(inspection.to_string())
    }

    /// Delivers a message to the inspection's actor, starting one if needed.
    fn dispatch(&self, inspection: Uuid, mut msg: RoomMsg) {
        loop {
            let (inbox, instance) = {
                let mut rooms = lock(&self.rooms);
                match rooms.get(&inspection) {
                    Some(h) => (h.inbox.clone(), h.instance),
                    None => {
                        let (inbox, rx) = mpsc::unbounded_channel();
                        let instance = self.next_instance.fetch_add(1, Ordering::Relaxed);
                        rooms.insert(
                            inspection,
                            RoomHandle {
                                inbox: inbox.clone(),
                                instance,
                            },
                        );
                        self.spawn_actor(inspection, instance, inbox.clone(), rx);
                        (inbox, instance)
                    }
                }
            };
            match inbox.send(msg) {
                Ok(()) => return,
                Err(mpsc::error::SendError(m)) => {
                    // The actor is unloading; forget it and start a fresh one.
                    msg = m;
                    self.forget(inspection, instance);
                }
            }
        }
    }

    /// Delivers a message to the inspection's actor if it has one; false if not.
    fn send_existing(&self, inspection: Uuid, msg: RoomMsg) -> bool {
        let inbox = lock(&self.rooms).get(&inspection).map(|h| h.inbox.clone());
        inbox.is_some_and(|inbox| inbox.send(msg).is_ok())
    }

    fn spawn_actor(
        &self,
        inspection: Uuid,
        instance: u64,
        inbox: mpsc::UnboundedSender<RoomMsg>,
        rx: mpsc::UnboundedReceiver<RoomMsg>,
    ) {
        let (ctx, hub) = (self.ctx.clone(), self.me.clone());
        tokio::spawn(async move {
            let mut rx = actor::run(ctx, inspection, inbox, rx).await;
            // Unload: after leaving the map and closing the queue nothing new arrives; whatever
            // slipped in meanwhile goes to a fresh actor.
            let Some(hub) = hub.upgrade() else { return };
            hub.forget(inspection, instance);
            rx.close();
            while let Ok(msg) = rx.try_recv() {
                hub.dispatch(inspection, msg);
            }
        });
    }

    fn forget(&self, inspection: Uuid, instance: u64) {
        let mut rooms = lock(&self.rooms);
        if rooms
            .get(&inspection)
            .is_some_and(|h| h.instance == instance)
        {
            rooms.remove(&inspection);
        }
    }

    pub(crate) fn seen_frame(&self, inspection: Uuid, participant: Uuid, ts: u32) -> Option<i64> {
        self.ctx.seen.lookup(inspection, participant, ts)
    }

    pub(crate) fn uplinks(&self, inspection: Uuid, now: i64) -> Vec<crate::uplink::Uplink> {
        self.ctx.uplinks.of(inspection, now)
    }

    pub(crate) fn peer_count(&self) -> usize {
        self.ctx.peers.load(Ordering::Relaxed)
    }

    pub(crate) async fn offer(
        &self,
        inspection: Uuid,
        participant: Uuid,
        role: MediaRole,
        sdp: serde_json::Value,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<serde_json::Value, MediaError> {
        let (desc, summary) = crate::sdp::check_offer(sdp, role)?;
        let (reply, answer) = oneshot::channel();
        self.dispatch(
            inspection,
            RoomMsg::Offer {
                participant,
                role,
                desc: Box::new(desc),
                summary,
                events,
                reply,
            },
        );
        answer
            .await
            .map_err(|_| MediaError::Internal("the media room stopped".into()))?
    }

    pub(crate) async fn candidate(
        &self,
        inspection: Uuid,
        participant: Uuid,
        candidate: serde_json::Value,
    ) -> Result<(), MediaError> {
        let (reply, done) = oneshot::channel();
        let msg = RoomMsg::Candidate {
            participant,
            candidate,
            reply,
        };
        if !self.send_existing(inspection, msg) {
            return Err(MediaError::UnknownPeer);
        }
        done.await
            .map_err(|_| MediaError::Internal("the media room stopped".into()))?
    }

    pub(crate) async fn leave(&self, inspection: Uuid, participant: Uuid) {
        let (reply, done) = oneshot::channel();
        if self.send_existing(inspection, RoomMsg::Leave { participant, reply }) {
            let _ = done.await;
        }
    }

    pub(crate) fn mark(&self, inspection: Uuid, mark: Mark) {
        // Persisted first (by the writer thread, fsynced): the finalizer reads marks from there.
        self.ctx.writer.send(Job::Mark {
            inspection_dir: self.dir(inspection),
            mark: mark.clone(),
        });
        if !self.send_existing(inspection, RoomMsg::Mark { mark }) {
            tracing::warn!(%inspection, "mark for an inspection without live media");
        }
    }

    pub(crate) fn request_keyframe(&self, inspection: Uuid) {
        // No room: no live video to ask.
        let _ = self.send_existing(inspection, RoomMsg::Keyframe);
    }

    pub(crate) async fn finish(
        &self,
        inspection: Uuid,
        marks: Vec<Mark>,
    ) -> Result<Manifest, MediaError> {
        let turn = lock(&self.finishing).entry(inspection).or_default().clone();
        let result = {
            let _turn = turn.lock().await;
            self.finish_once(inspection, marks).await
        };
        {
            let mut finishing = lock(&self.finishing);
            // Only the map and `turn` hold it: nobody else waits.
            if Arc::strong_count(&turn) == 2 {
                finishing.remove(&inspection);
            }
        }
        result
    }

    async fn finish_once(
        &self,
        inspection: Uuid,
        marks: Vec<Mark>,
    ) -> Result<Manifest, MediaError> {
        // The room stops recording (live or not: a room is started for it), then every record
        // it queued is on disk before the journals are read.
        let (reply, ready) = oneshot::channel();
        self.dispatch(inspection, RoomMsg::Finish { reply });
        let FinishReady {
            marks: live,
            written,
        } = ready
            .await
            .map_err(|_| MediaError::Internal("the media room stopped".into()))?;
        let _ = written.await;
        let dir = self.dir(inspection);
        tokio::task::spawn_blocking(move || {
            if let Some(m) =
                read_manifest(&dir).map_err(|e| MediaError::Internal(format!("manifest: {e}")))?
            {
                // Finished before: the same recording, never rebuilt.
                return Ok(m);
            }
            // The caller's marks, the live ones and the crash-safe log: the same mark may be
            // in all three.
            let mut all = marks;
            all.extend(live);
            all.extend(read_marks(&dir).unwrap_or_default());
            all.sort_by(|a, b| (a.at_micros, &a.item_id).cmp(&(b.at_micros, &b.item_id)));
            all.dedup();
            Ok::<_, MediaError>(finalize_inspection(&dir, &all)?)
        })
        .await
        .map_err(|e| MediaError::Internal(format!("finalize task: {e}")))?
    }

    pub(crate) async fn recover(&self) -> Result<Vec<crate::recover::Unfinished>, MediaError> {
        let dir = self.ctx.cfg.recordings_dir.clone();
        tokio::task::spawn_blocking(move || crate::recover::seal_all(&dir))
            .await
            .map_err(|e| MediaError::Internal(format!("recovery task: {e}")))?
            .map_err(|e| MediaError::Internal(format!("recovery: {e}")))
    }
}

//! The network task: the one owner of the swarm. It takes commands from handles, answers
//! inbound requests (decoding and refusing on the task, device and store work off it), keeps
//! Δ(d) to certified peers, and routes outbound answers back to their callers.

use super::*;

pub(super) struct Task {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) k: usize,
    pub(super) service: Option<Arc<dyn Service>>,
    /// Per-peer token buckets for `Read`s and for other work.
    pub(super) limits: crate::limits::Limits,
    /// Requests whose answers are being computed off the network task.
    pub(super) inflight: Arc<std::sync::atomic::AtomicUsize>,
    pub(super) max_inflight: usize,
    pub(super) pending: HashMap<(Proto, OutboundRequestId), Reply<Vec<u8>>>,
    pub(super) queries: HashMap<kad::QueryId, (Vec<u8>, Reply<Vec<PeerId>>)>,
    /// Which peers showed a valid certificate (only they count as members of Δ(d)).
    pub(super) members: crate::members::Members,
    /// Listen addresses of peers whose certificate is not verified yet.
    pub(super) addrs: HashMap<PeerId, Vec<Multiaddr>>,
    /// This node's certificate answer, if it is a listing node.
    pub(super) own_cert: Option<Vec<u8>>,
    /// Certificate requests in flight.
    pub(super) cert_requests: HashMap<OutboundRequestId, PeerId>,
    /// Lookups whose answer waits for certificates: key, candidates (closest first), reply,
    /// deadline.
    pub(super) waiting: Vec<crate::members::Waiting>,
    /// Joins (self-lookups) whose callers wait for their end.
    pub(super) bootstraps: HashMap<kad::QueryId, Reply<()>>,
    /// Connections established since the start.
    pub(super) opened: u64,
}

/// An answer computed off the network task, to send back on it.
struct Answer {
    proto: Proto,
    channel: ResponseChannel<Vec<u8>>,
    bytes: Vec<u8>,
}

impl Task {
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        stop: Arc<tokio::sync::Notify>,
    ) {
        let (answers_tx, mut answers) = mpsc::channel::<Answer>(256);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let jitter = Duration::from_secs(
            u64::from(
                self.swarm
                    .local_peer_id()
                    .to_bytes()
                    .last()
                    .copied()
                    .unwrap_or(0),
            ) % 60,
        );
        let mut refresh = tokio::time::interval_at(
            tokio::time::Instant::now() + super::REFRESH_EVERY + jitter,
            super::REFRESH_EVERY + jitter,
        );
        loop {
            tokio::select! {
                _ = tick.tick() => self.serve_waiting(),
                _ = refresh.tick() => {
                    let _ = self.refresh(true);
                }
                ev = self.swarm.select_next_some() => self.on_event(ev, &answers_tx),
                cmd = rx.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                Some(a) = answers.recv() => {
                    let b = self.swarm.behaviour_mut();
                    let rr = match a.proto {
                        Proto::Publish => &mut b.publish,
                        Proto::Retrieve => &mut b.retrieve,
                        Proto::Reissue => &mut b.reissue,
                    };
                    if rr.send_response(a.channel, a.bytes).is_err() {
                        tracing::debug!("a requester went away before its answer");
                    }
                }
                _ = stop.notified() => break,
            }
        }
        tracing::info!("network task stopped");
    }

    fn rr(&mut self, proto: Proto) -> &mut request_response::Behaviour<BytesCodec> {
        let b = self.swarm.behaviour_mut();
        match proto {
            Proto::Publish => &mut b.publish,
            Proto::Retrieve => &mut b.retrieve,
            Proto::Reissue => &mut b.reissue,
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request {
                proto,
                peer,
                bytes,
                reply,
            } => {
                let id = self.rr(proto).send_request(&peer, bytes);
                self.pending.insert((proto, id), reply);
            }
            Command::Closest { key, reply } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_closest_peers(key.clone());
                self.queries.insert(id, (key, reply));
            }
            Command::Certificates { peers, reply } => {
                let _ = reply.send(peers.iter().map(|p| self.members.certificate(p)).collect());
            }
            Command::Status { reply } => {
                let routing_table = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .kbuckets()
                    .map(|b| b.num_entries())
                    .sum();
                let _ = reply.send(NetStatus {
                    peer: *self.swarm.local_peer_id(),
                    listen: self.swarm.listeners().cloned().collect(),
                    connected: self.swarm.connected_peers().count(),
                    routing_table,
                    records: {
                        use libp2p::kad::store::RecordStore;
                        let store = self.swarm.behaviour_mut().kad.store_mut();
                        store.records().count() + store.provided().count()
                    },
                    opened: self.opened,
                });
            }
            Command::Dial { addr, reply } => {
                let has_peer = matches!(addr.iter().last(), Some(Protocol::P2p(_)));
                let r = if has_peer {
                    self.swarm
                        .dial(addr.clone())
                        .map_err(|e| NetError::Lookup(format!("cannot dial {addr}: {e}")))
                } else {
                    Err(NetError::Lookup(format!(
                        "{addr} does not end in /p2p/<PeerId>"
                    )))
                };
                let _ = reply.send(r);
            }
            Command::Peers { reply } => {
                let mut out = Vec::new();
                let entries: Vec<(PeerId, Vec<Multiaddr>)> = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .kbuckets()
                    .flat_map(|b| {
                        b.iter()
                            .map(|e| {
                                (
                                    *e.node.key.preimage(),
                                    e.node.value.iter().cloned().collect(),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect();
                // Bootstrap and kept peers enter the table before their certificate is seen:
                // only the certified ones are peers to show, keep or count as joined.
                for (peer, addrs) in entries {
                    if !self.members.certified(&peer) {
                        continue;
                    }
                    out.push(PeerInfo {
                        peer,
                        addrs,
                        connected: self.swarm.is_connected(&peer),
                    });
                }
                let _ = reply.send(out);
            }
            Command::Seeds { key, reply } => {
                let target = KBucketKey::new(key);
                let closest: Vec<PeerId> = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_closest_local_peers(&target)
                    .map(|k| *k.preimage())
                    .filter(|p| self.members.certified(p))
                    .take(20)
                    .collect();
                let mut out = Vec::new();
                for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
                    for e in bucket.iter() {
                        let p = *e.node.key.preimage();
                        if closest.contains(&p) {
                            out.push((p, e.node.value.iter().cloned().collect()));
                        }
                    }
                }
                let _ = reply.send(out);
            }
            Command::Addresses { peer, reply } => {
                let mut found: Vec<Multiaddr> = Vec::new();
                for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
                    for e in bucket.iter() {
                        if *e.node.key.preimage() == peer {
                            found.extend(e.node.value.iter().cloned());
                        }
                    }
                }
                let _ = reply.send(found);
            }
            Command::Bootstrap { reply } => {
                if let Some(id) = self.refresh(false) {
                    self.bootstraps.insert(id, reply);
                } else {
                    let _ = reply.send(Err(NetError::Lookup("no known peers".into())));
                }
            }
        }
    }

    /// Δ(d) as this node knows it: the k closest of `peers` and itself.
    /// `peers` and this node, closest to `key` first.
    fn sorted(&self, key: &[u8], peers: impl Iterator<Item = PeerId>) -> Vec<PeerId> {
        let target = KBucketKey::new(key.to_vec());
        let me = *self.swarm.local_peer_id();
        let mut all: Vec<PeerId> = peers.filter(|p| *p != me).collect();
        all.push(me);
        all.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
        all.dedup();
        all
    }

    /// Looks this node up: the join (`far` false), and the periodic refresh (`far` true).
    /// The peers met on the way (each connection identified and its certificate checked)
    /// fill the routing table nearest this node, and the peers that join later link to it
    /// from across the keyspace. A refresh also looks up one random key in each of the
    /// [`FAR_BUCKETS`] farthest buckets, so that a node keeps links there besides its
    /// bootstrap peer. Not at the join: measured at N = 500, two far lookups per join
    /// quadrupled the connections a join opens (364 against 92 per node) and its time.
    /// Kademlia's full bootstrap (a lookup per bucket) would connect to ~log2 N × 20 peers.
    /// Returns the self-lookup's id (the far ones are not waited for), `None` if the table
    /// is empty.
    ///
    /// [`FAR_BUCKETS`]: super::FAR_BUCKETS
    fn refresh(&mut self, far: bool) -> Option<kad::QueryId> {
        let me = *self.swarm.local_peer_id();
        let kad = &mut self.swarm.behaviour_mut().kad;
        if kad.kbuckets().all(|b| b.num_entries() == 0) {
            return None;
        }
        let own = KBucketKey::from(me);
        let far_buckets = if far { super::FAR_BUCKETS } else { 0 };
        for bucket in (256 - far_buckets)..256 {
            // A key lands in bucket 255 - j with probability 2^-(j+1): 32 tries all but
            // always find one for the two farthest.
            let target = (0..32).find_map(|_| {
                let mut bytes = [0u8; 32];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
                (own.distance(&KBucketKey::new(bytes.to_vec())).ilog2() == Some(bucket))
                    .then_some(bytes)
            });
            if let Some(t) = target {
                kad.get_closest_peers(t.to_vec());
            }
        }
        Some(kad.get_closest_peers(me))
    }

    /// Asks `peer` for its certificate, unless it was asked lately.
    fn ask_cert(&mut self, peer: PeerId) {
        if self.members.should_ask(peer, Instant::now()) {
            let bytes = Query::Certificate.to_bytes();
            let id = self
                .swarm
                .behaviour_mut()
                .retrieve
                .send_request(&peer, bytes);
            self.cert_requests.insert(id, peer);
        }
    }

    /// Answers the lookups whose members are known (or whose time to wait is over).
    fn serve_waiting(&mut self) {
        let me = *self.swarm.local_peer_id();
        let ask = self
            .members
            .serve(&mut self.waiting, self.k, me, Instant::now());
        for p in ask {
            self.ask_cert(p);
        }
    }

    /// Whether this node is among the k closest to `key`, as far as its routing table knows.
    fn responsible(&mut self, key: &[u8]) -> bool {
        let target = KBucketKey::new(key.to_vec());
        // Only certified peers count: a foreign peer ground next to the key pushes nobody out.
        let known: Vec<PeerId> = self
            .swarm
            .behaviour_mut()
            .kad
            .get_closest_local_peers(&target)
            .map(|k| *k.preimage())
            .filter(|p| self.members.certified(p))
            .take(self.k)
            .collect();
        let me = *self.swarm.local_peer_id();
        let mut closest = self.sorted(key, known.into_iter());
        closest.truncate(self.k);
        closest.contains(&me)
    }

    fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>, answers: &mpsc::Sender<Answer>) {
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL) => {
                let addrs: Vec<Multiaddr> = info.listen_addrs.into_iter().take(8).collect();
                if self.members.certified(&peer_id) {
                    for addr in addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                } else {
                    if self.addrs.len() >= 10_000 {
                        self.addrs.clear();
                    }
                    self.addrs.insert(peer_id, addrs);
                    self.ask_cert(peer_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                ..
            })) => match result {
                kad::QueryResult::GetClosestPeers(r) => {
                    if !step.last {
                        return;
                    }
                    if let Some(reply) = self.bootstraps.remove(&id) {
                        // A join that met nobody failed (the caller retries).
                        let _ = reply.send(match r {
                            Ok(ok) if !ok.peers.is_empty() => Ok(()),
                            Ok(_) => Err(NetError::Lookup("the join met no peer".into())),
                            Err(e) => Err(NetError::Lookup(format!("the join failed: {e}"))),
                        });
                        return;
                    }
                    if let Some((key, reply)) = self.queries.remove(&id) {
                        let peers = match r {
                            Ok(ok) => ok.peers.into_iter().map(|p| p.peer_id).collect::<Vec<_>>(),
                            Err(kad::GetClosestPeersError::Timeout { peers, .. }) => {
                                peers.into_iter().map(|p| p.peer_id).collect()
                            }
                        };
                        let sorted = self.sorted(&key, peers.into_iter());
                        let deadline = Instant::now() + Duration::from_secs(5);
                        self.waiting.push((sorted, reply, deadline));
                        self.serve_waiting();
                    }
                }
                // libp2p starts a full bootstrap by itself whenever a peer enters a table of
                // fewer than 20: its self-lookup is kept, its lookups per bucket are cut short
                // before they contact anyone (each would connect to ~20 more peers).
                kad::QueryResult::Bootstrap(_) if !step.last => {
                    if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                }
                _ => {}
            },
            SwarmEvent::Behaviour(BehaviourEvent::Publish(e)) => {
                self.on_rr(Proto::Publish, e, answers)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Retrieve(e)) => {
                self.on_rr(Proto::Retrieve, e, answers)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Reissue(e)) => {
                self.on_rr(Proto::Reissue, e, answers)
            }
            SwarmEvent::ConnectionEstablished { .. } => self.opened += 1,
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "outgoing connection failed");
            }
            _ => {}
        }
    }

    fn on_rr(
        &mut self,
        proto: Proto,
        e: request_response::Event<Vec<u8>, Vec<u8>>,
        answers: &mpsc::Sender<Answer>,
    ) {
        use request_response::{Event, Message, OutboundFailure};
        match e {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                self.on_request(proto, peer, request, channel, answers);
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let cert = (proto == Proto::Retrieve)
                    .then(|| self.cert_requests.remove(&request_id))
                    .flatten();
                if let Some(peer) = cert {
                    let certified = self
                        .members
                        .on_answer(peer, Some(&response), Instant::now());
                    let addrs = self.addrs.remove(&peer).unwrap_or_default();
                    if certified {
                        for addr in addrs {
                            self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                        }
                    }
                    self.serve_waiting();
                } else if let Some(reply) = self.pending.remove(&(proto, request_id)) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let cert = (proto == Proto::Retrieve)
                    .then(|| self.cert_requests.remove(&request_id))
                    .flatten();
                if let Some(peer) = cert {
                    self.members.on_answer(peer, None, Instant::now());
                    self.addrs.remove(&peer);
                    self.serve_waiting();
                } else if let Some(reply) = self.pending.remove(&(proto, request_id)) {
                    let err = match error {
                        OutboundFailure::Timeout => NetError::Timeout(peer),
                        other => NetError::Unreachable {
                            peer,
                            reason: other.to_string(),
                        },
                    };
                    let _ = reply.send(Err(err));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, ?proto, "inbound request failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(
        &mut self,
        proto: Proto,
        peer: PeerId,
        request: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
        answers: &mpsc::Sender<Answer>,
    ) {
        let refuse = |code, why: String| -> Vec<u8> {
            match proto {
                Proto::Retrieve => RetrieveAnswer::Refused(Refused::new(code, why)).to_bytes(),
                _ => PublishResponse::Refused(Refused::new(code, why)).to_bytes(),
            }
        };
        let Some(service) = self.service.clone() else {
            let bytes = refuse(
                RefusalCode::Unavailable,
                "this node is not a listing node".into(),
            );
            let _ = self.rr(proto).send_response(channel, bytes);
            return;
        };
        // Decode on the network task (cheap, bounded); refuse early what can be refused.
        let mut read = false;
        let job: Box<dyn FnOnce() -> Vec<u8> + Send> = match proto {
            Proto::Publish | Proto::Reissue => match PublishRequest::from_bytes(&request) {
                Err(e) => {
                    let _ = self
                        .rr(proto)
                        .send_response(channel, refuse(RefusalCode::Invalid, e.to_string()));
                    return;
                }
                Ok(req) => {
                    if proto == Proto::Publish && !self.responsible(req.0.offer.key.0.as_bytes()) {
                        let why = format!("not among the {} closest nodes to this item, as far as this node knows", self.k);
                        let _ = self
                            .rr(proto)
                            .send_response(channel, refuse(RefusalCode::NotResponsible, why));
                        return;
                    }
                    if proto == Proto::Publish {
                        Box::new(move || service.publish(peer, req).to_bytes())
                    } else {
                        Box::new(move || service.reissue(peer, req).to_bytes())
                    }
                }
            },
            Proto::Retrieve => match Query::from_bytes(&request) {
                Err(e) => {
                    let _ = self
                        .rr(proto)
                        .send_response(channel, refuse(RefusalCode::Invalid, e.to_string()));
                    return;
                }
                Ok(Query::Certificate) => {
                    let bytes = self.own_cert.clone().unwrap_or_else(|| {
                        refuse(RefusalCode::NotFound, "this node has no certificate".into())
                    });
                    let _ = self.rr(proto).send_response(channel, bytes);
                    return;
                }
                Ok(msg) => {
                    read = matches!(msg, Query::Head(_));
                    Box::new(move || service.retrieve(peer, msg).to_bytes())
                }
            },
        };
        // Every request that costs work is metered per peer: `Read`s (device signatures) on
        // their own, slower bucket; and all of them share a bound on work in flight.
        if !self.limits.allow(peer, read) {
            let what = if read { "Reads" } else { "requests" };
            let _ = self.rr(proto).send_response(
                channel,
                refuse(
                    RefusalCode::RateLimited,
                    format!("too many {what} from this peer; slow down"),
                ),
            );
            return;
        }
        use std::sync::atomic::Ordering;
        if self.inflight.fetch_add(1, Ordering::SeqCst) >= self.max_inflight {
            self.inflight.fetch_sub(1, Ordering::SeqCst);
            let _ = self.rr(proto).send_response(
                channel,
                refuse(RefusalCode::Unavailable, "busy; try again".into()),
            );
            return;
        }
        let slot = InFlight(self.inflight.clone());
        let answers = answers.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = job();
            drop(slot);
            let _ = answers.blocking_send(Answer {
                proto,
                channel,
                bytes,
            });
        });
    }
}

/// A request being answered; its slot is given back however the job ends (a panic too).
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

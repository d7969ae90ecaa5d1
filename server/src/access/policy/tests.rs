//! The permission matrix: every decision of the policy, for every kind of caller, in
//! one table. A change to who may do what changes a letter here.

use super::*;

/// Who is asking: a principal (connections and tokens), or an API key.
struct Who {
    name: &'static str,
    access: Option<AccessContext>,
    caller: Option<Caller>,
}

fn principal(name: &'static str, user: Option<&str>, org: &str, roles: &[&str]) -> Who {
    let access = AccessContext {
        user_id: user.map(str::to_string),
        org_id: org.into(),
        groups: vec![],
        roles: roles.iter().map(|r| r.to_string()).collect(),
        anonymous: user.is_none(),
        name: None,
    };
    Who {
        name,
        // Anonymous callers have no credential to present over HTTP.
        caller: user.map(|_| Caller::Token(access.clone())),
        access: Some(access),
    }
}

impl Who {
    fn in_groups(mut self, groups: &[&str]) -> Who {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if let Some(access) = &mut self.access {
            access.groups = groups.clone();
        }
        if let Some(Caller::Token(access)) = &mut self.caller {
            access.groups = groups;
        }
        self
    }
}

fn actors() -> Vec<Who> {
    vec![
        principal("anon", None, "acme", &[]),
        principal("owner", Some("u1"), "acme", &[]),
        principal("colleague", Some("u2"), "acme", &[]).in_groups(&["support"]),
        principal("operator", Some("u3"), "acme", &[ROLE_OPERATOR]),
        principal("admin", Some("u4"), "acme", &[ROLE_ADMIN]),
        principal("publisher", Some("svc"), "acme", &[ROLE_PUBLISHER]),
        // The owner's user id, in another org, with every role.
        principal(
            "outsider",
            Some("u1"),
            "globex",
            &[ROLE_OPERATOR, ROLE_ADMIN, ROLE_PUBLISHER],
        ),
        Who {
            name: "publisher-key",
            access: None,
            caller: Some(Caller::PublisherKey {
                name: "orders".into(),
            }),
        },
        Who {
            name: "admin-key",
            access: None,
            caller: Some(Caller::AdminKey { name: "ops".into() }),
        },
    ]
}

fn owned_session() -> SessionRecord {
    SessionRecord {
        session_id: "s_owned".into(),
        org_id: "acme".into(),
        owner: Some("u1".into()),
        key_sha256: None,
        created_at: 0,
        metadata: None,
        assistant: None,
    }
}

/// An anonymous session of acme whose key is `k_right`.
fn anonymous_session() -> SessionRecord {
    let digest = sha2::Sha256::digest(b"k_right");
    SessionRecord {
        session_id: "s_anon".into(),
        org_id: "acme".into(),
        owner: None,
        key_sha256: Some(digest.iter().map(|b| format!("{b:02x}")).collect()),
        created_at: 0,
        metadata: None,
        assistant: None,
    }
}

use sha2::Digest;

fn letter<T>(decision: Result<T, Refusal>) -> char {
    match decision {
        Ok(_) => 'A',
        Err(Refusal::Hide) => 'H',
        Err(Refusal::Forbid(_)) => 'F',
    }
}

fn ws<T>(who: &Who, decide: impl Fn(&AccessContext) -> Result<T, Refusal>) -> char {
    who.access.as_ref().map_or('-', |a| letter(decide(a)))
}

fn http<T>(who: &Who, decide: impl Fn(&Caller) -> Result<T, Refusal>) -> char {
    who.caller.as_ref().map_or('-', |c| letter(decide(c)))
}

/// A turn's audience as a decision: `A` when `who` starts a turn, `F` when its
/// message is a staff message.
fn audience(who: &AccessContext, session: &SessionRecord) -> Decision {
    turn_audience(who, session)
        .map(|_| ())
        .ok_or(Refusal::Forbid("staff"))
}

/// The principal whose message started a turn.
fn asker(user: Option<&str>, groups: &[&str], roles: &[&str]) -> AccessContext {
    AccessContext {
        user_id: user.map(str::to_string),
        org_id: "acme".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        anonymous: user.is_none(),
        name: None,
    }
}

fn publish_to(caller: &Caller, on_behalf_of: Option<&str>, target: Target<'_>) -> Decision {
    publish(&publisher(caller)?, on_behalf_of, target)
}

/// A (allowed), H (`not_found`: hidden), F (`forbidden`), - (cannot be asked: no
/// WebSocket for an API key, no HTTP credential for an anonymous visitor).
#[test]
fn the_permission_matrix() {
    let owned = owned_session();
    let anonymous = anonymous_session();
    type Cell<'a> = Box<dyn Fn(&Who) -> char + 'a>;
    let rows: Vec<(&str, &str, Cell)> = vec![
        //                                          anon owner coll oper admin pub out pkey akey
        (
            "read a public document of acme",
            "A A A A A A H - -",
            Box::new(|w| {
                ws(w, |a| {
                    read_document(
                        a,
                        "acme",
                        &Acl {
                            public: true,
                            ..Acl::default()
                        },
                    )
                })
            }),
        ),
        (
            "read an org-wide document of acme",
            "H A A A A A H - -",
            Box::new(|w| ws(w, |a| read_document(a, "acme", &Acl::default()))),
        ),
        (
            "read a document for group support",
            "H H A H H H H - -",
            Box::new(|w| {
                ws(w, |a| {
                    read_document(
                        a,
                        "acme",
                        &Acl {
                            groups: vec!["support".into()],
                            ..Acl::default()
                        },
                    )
                })
            }),
        ),
        (
            "read a document for user u1",
            "H A H H H H H - -",
            Box::new(|w| {
                ws(w, |a| {
                    read_document(
                        a,
                        "acme",
                        &Acl {
                            users: vec!["u1".into()],
                            ..Acl::default()
                        },
                    )
                })
            }),
        ),
        (
            "join the owned session",
            "H A H A A H H - -",
            Box::new(|w| ws(w, |a| join(a, &owned, None))),
        ),
        (
            "join the anonymous session with its key",
            "A A A A A A H - -",
            Box::new(|w| ws(w, |a| join(a, &anonymous, Some("k_right")))),
        ),
        (
            "join the anonymous session with a wrong key",
            "H H H A A H H - -",
            Box::new(|w| ws(w, |a| join(a, &anonymous, Some("k_wrong")))),
        ),
        (
            "join the anonymous session without a key",
            "H H H A A H H - -",
            Box::new(|w| ws(w, |a| join(a, &anonymous, None))),
        ),
        (
            "send, cancel or decide without joining",
            "F F F F F F F - -",
            Box::new(|w| ws(w, |_| act_in_session(false))),
        ),
        (
            "send, cancel or decide after joining",
            "A A A A A A A - -",
            Box::new(|w| ws(w, |_| act_in_session(true))),
        ),
        // Turns and tool calls: the rows assume the caller joined the session.
        (
            "start an AI turn in the owned session",
            "A A A F F A F - -",
            Box::new(|w| ws(w, |a| audience(a, &owned))),
        ),
        (
            "start an AI turn in the anonymous session",
            "A A A F F A F - -",
            Box::new(|w| ws(w, |a| audience(a, &anonymous))),
        ),
        (
            "decide a tool call the owner u1 asked",
            "F A F A A F H - -",
            Box::new(|w| ws(w, |a| decide_tool(a, "acme", &asker(Some("u1"), &[], &[])))),
        ),
        (
            "decide a tool call u1 of group finance asked",
            "F A F F F F H - -",
            Box::new(|w| {
                ws(w, |a| {
                    decide_tool(a, "acme", &asker(Some("u1"), &["finance"], &[]))
                })
            }),
        ),
        (
            "decide a tool call operator u3 asked",
            "F F F A A F H - -",
            Box::new(|w| {
                ws(w, |a| {
                    decide_tool(a, "acme", &asker(Some("u3"), &[], &[ROLE_OPERATOR]))
                })
            }),
        ),
        (
            "decide a tool call in an anonymous session",
            "A A A A A A H - -",
            Box::new(|w| ws(w, |a| decide_tool(a, "acme", &asker(None, &[], &[])))),
        ),
        (
            // The outsider reads its own org's (globex) inbox.
            "read the org's inbox",
            "F F F A A F A - -",
            Box::new(|w| ws(w, read_inbox)),
        ),
        (
            "claim a conversation of the owned session",
            "F F F A A F H - -",
            Box::new(|w| ws(w, |a| claim_handoff(a, &owned))),
        ),
        (
            "release a conversation operator u3 holds",
            "F F F A A F H - -",
            Box::new(|w| ws(w, |a| release_handoff(a, &owned, Some("u3")))),
        ),
        (
            "release a conversation someone else holds",
            "F F F F A F H - -",
            Box::new(|w| ws(w, |a| release_handoff(a, &owned, Some("u9")))),
        ),
        (
            "refresh with a token for the same identity",
            "F A A A A A A - -",
            Box::new(|w| ws(w, |a| refresh(a, a))),
        ),
        (
            "refresh with a token for another user",
            "F F F F F F F - -",
            Box::new(|w| {
                ws(w, |a| {
                    let mut other = a.clone();
                    other.user_id = Some("someone-else".into());
                    other.anonymous = false;
                    refresh(a, &other)
                })
            }),
        ),
        (
            "publish into the owned session",
            "- F F F F A H A F",
            Box::new(|w| {
                http(w, |c| {
                    publish_to(c, None, Target::Session { org: Some("acme") })
                })
            }),
        ),
        (
            "publish into a session that does not exist",
            "- F F F F H H H F",
            Box::new(|w| http(w, |c| publish_to(c, None, Target::Session { org: None }))),
        ),
        (
            "publish to org acme",
            "- F F F F A F A F",
            Box::new(|w| http(w, |c| publish_to(c, None, Target::Org { org: "acme" }))),
        ),
        (
            "publish to a user",
            "- F F F F A A A F",
            Box::new(|w| http(w, |c| publish_to(c, None, Target::User))),
        ),
        (
            "publish to a user on behalf of globex",
            "- F F F F F A A F",
            Box::new(|w| http(w, |c| publish_to(c, Some("globex"), Target::User))),
        ),
        (
            "post an operator message into the owned session",
            "- F F A F A H A F",
            Box::new(|w| http(w, |c| post_operator_message(&operator(c)?, Some(&owned)))),
        ),
        (
            "post an operator message into a session that does not exist",
            "- F F H F H H H F",
            Box::new(|w| http(w, |c| post_operator_message(&operator(c)?, None))),
        ),
        (
            "read the owned session's history",
            "- A H H A H H A A",
            Box::new(|w| http(w, |c| read_history(c, Some(&owned)))),
        ),
        (
            "read the history of a session that does not exist",
            "- H H H H H H H H",
            Box::new(|w| http(w, |c| read_history(c, None))),
        ),
        (
            "read the owned session's event stream",
            "- A H A A H H A A",
            Box::new(|w| http(w, |c| read_stream(c, Some(&owned), None))),
        ),
        (
            "read the event stream of a session that does not exist",
            "- H H H H H H H H",
            Box::new(|w| http(w, |c| read_stream(c, None, None))),
        ),
        (
            "administer org acme",
            "- F F F A F F F A",
            Box::new(|w| http(w, |c| administer(c, Some("acme")))),
        ),
        (
            "administer without naming an org",
            "- F F F A F A F A",
            Box::new(|w| http(w, |c| administer(c, None))),
        ),
        (
            "reload the gateway's configuration",
            "- F F F A F A F A",
            Box::new(|w| http(w, reload_configuration)),
        ),
    ];
    let actors = actors();
    let mut wrong = Vec::new();
    for (action, expected, cell) in &rows {
        let got: Vec<char> = actors.iter().map(cell).collect();
        let expected: Vec<char> = expected.split_whitespace().flat_map(str::chars).collect();
        assert_eq!(
            expected.len(),
            actors.len(),
            "row {action:?} has a wrong width"
        );
        for ((who, want), have) in actors.iter().zip(&expected).zip(&got) {
            if want != have {
                wrong.push(format!(
                    "{action}: {} expected {want}, got {have}",
                    who.name
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the policy changed:\n{}",
        wrong.join("\n")
    );
}

/// What each scope means to the handler: an admin key names the org, a token acts on
/// its own.
#[test]
fn an_admin_key_may_administer_any_org_and_a_token_only_its_own() {
    let key = Caller::AdminKey { name: "ops".into() };
    assert_eq!(administer(&key, Some("globex")), Ok(AdminScope::AnyOrg));
    let admin = principal("admin", Some("u4"), "acme", &[ROLE_ADMIN]);
    let token = admin.caller.unwrap();
    assert_eq!(
        administer(&token, None),
        Ok(AdminScope::OwnOrg("acme".into()))
    );
}

/// An anonymous session admits whoever presents its key, in its org only.
#[test]
fn anonymous_sessions_need_their_key() {
    let s = anonymous_session();
    let visitor = principal("anon", None, "acme", &[]).access.unwrap();
    assert_eq!(join(&visitor, &s, Some("k_right")), Ok(()));
    assert_eq!(join(&visitor, &s, Some("k_wrong")), Err(Refusal::Hide));
    assert_eq!(join(&visitor, &s, None), Err(Refusal::Hide));
    let elsewhere = principal("anon", None, "other", &[]).access.unwrap();
    assert_eq!(join(&elsewhere, &s, Some("k_right")), Err(Refusal::Hide));
}

/// Staff of its org join an anonymous session without its key (to answer the
/// visitor); nobody else does, and staff of another org never.
#[test]
fn staff_of_its_org_join_an_anonymous_session_without_its_key() {
    let s = anonymous_session();
    for role in ["operator", "admin"] {
        let staff = principal("x", Some("dana"), "acme", &[role])
            .access
            .unwrap();
        assert_eq!(join(&staff, &s, None), Ok(()), "{role}");
        assert_eq!(join(&staff, &s, Some("k_wrong")), Ok(()), "{role}");
        assert_eq!(voice(&staff, &s), Voice::Staff, "{role}");
        let foreign = principal("x", Some("dana"), "other", &[role])
            .access
            .unwrap();
        assert_eq!(
            join(&foreign, &s, Some("k_right")),
            Err(Refusal::Hide),
            "{role}"
        );
    }
    let member = principal("x", Some("u2"), "acme", &["support"])
        .access
        .unwrap();
    assert_eq!(join(&member, &s, None), Err(Refusal::Hide));
    let reader = Caller::Token(
        principal("x", Some("dana"), "acme", &["operator"])
            .access
            .unwrap(),
    );
    assert_eq!(read_stream(&reader, Some(&s), None), Ok(()));
}

/// An anonymous visitor reads an anonymous session's event stream with its key only,
/// exactly as it joins it.
#[test]
fn an_anonymous_sessions_stream_needs_its_key() {
    let s = anonymous_session();
    let visitor = Caller::Token(principal("anon", None, "acme", &[]).access.unwrap());
    assert_eq!(read_stream(&visitor, Some(&s), Some("k_right")), Ok(()));
    assert_eq!(
        read_stream(&visitor, Some(&s), Some("k_wrong")),
        Err(Refusal::Hide)
    );
    assert_eq!(read_stream(&visitor, Some(&s), None), Err(Refusal::Hide));
    let elsewhere = Caller::Token(principal("anon", None, "other", &[]).access.unwrap());
    assert_eq!(
        read_stream(&elsewhere, Some(&s), Some("k_right")),
        Err(Refusal::Hide)
    );
}

/// An owned session admits its owner, and operators and admins of its org.
#[test]
fn owned_sessions_admit_the_owner_and_same_org_operators_only() {
    let s = owned_session();
    let who = |user, org, roles: &[&str]| principal("x", Some(user), org, roles).access.unwrap();
    assert_eq!(join(&who("u1", "acme", &[]), &s, None), Ok(()));
    assert_eq!(join(&who("u2", "acme", &[]), &s, None), Err(Refusal::Hide));
    assert_eq!(join(&who("u2", "acme", &["operator"]), &s, None), Ok(()));
    assert_eq!(join(&who("u3", "acme", &["admin"]), &s, None), Ok(()));
    assert_eq!(
        join(&who("u1", "other", &["admin"]), &s, None),
        Err(Refusal::Hide)
    );
}

/// The session routes over HTTP (docs/protocol.md §6.15), where an anonymous visitor
/// is a caller too. A, H, F as in the matrix above; for a message, C (a customer's
/// `user` message) or O (an operator message).
#[test]
fn the_http_session_matrix() {
    fn caller_of(who: &Who) -> Caller {
        who.caller
            .clone()
            .unwrap_or_else(|| Caller::Token(who.access.clone().expect("a principal or a key")))
    }
    fn speaker(decision: Result<HttpSpeaker<'_>, Refusal>) -> char {
        match decision {
            Ok(HttpSpeaker::Customer(_)) => 'C',
            Ok(HttpSpeaker::Operator(_)) => 'O',
            Err(refusal) => letter::<()>(Err(refusal)),
        }
    }
    let owned = owned_session();
    let anonymous = anonymous_session();
    type Cell<'a> = Box<dyn Fn(&Caller) -> char + 'a>;
    let rows: Vec<(&str, &str, Cell)> = vec![
        //                                          anon owner coll oper admin pub out pkey akey
        (
            "open a session",
            "A A A A A A A F F",
            Box::new(|c| letter(open_session(c))),
        ),
        (
            "act in the owned session",
            "H A H A A H H F F",
            Box::new(|c| letter(http_member(c, Some(&owned), None))),
        ),
        (
            "act in the anonymous session with its key",
            "A A A A A A H F F",
            Box::new(|c| letter(http_member(c, Some(&anonymous), Some("k_right")))),
        ),
        (
            "act in the anonymous session with a wrong key",
            "H H H A A H H F F",
            Box::new(|c| letter(http_member(c, Some(&anonymous), Some("k_wrong")))),
        ),
        (
            "act in a session that does not exist",
            "H H H H H H H F F",
            Box::new(|c| letter(http_member(c, None, Some("k_right")))),
        ),
        (
            "post into the owned session",
            "H C F O O O H O F",
            Box::new(|c| speaker(http_speaker(c, Some(&owned), None))),
        ),
        (
            "post into the anonymous session with its key",
            "C C C O O C H O F",
            Box::new(|c| speaker(http_speaker(c, Some(&anonymous), Some("k_right")))),
        ),
        (
            "post into the anonymous session without its key",
            "H F F O O O H O F",
            Box::new(|c| speaker(http_speaker(c, Some(&anonymous), None))),
        ),
        (
            "chat in the owned session",
            "H A H F F H H F F",
            Box::new(|c| letter(http_chat(c, Some(&owned), None))),
        ),
        (
            "chat in the anonymous session with its key",
            "A A A F F A H F F",
            Box::new(|c| letter(http_chat(c, Some(&anonymous), Some("k_right")))),
        ),
    ];
    let actors = actors();
    let mut wrong = Vec::new();
    for (action, expected, cell) in &rows {
        let expected: Vec<char> = expected.split_whitespace().flat_map(str::chars).collect();
        assert_eq!(
            expected.len(),
            actors.len(),
            "row {action:?} has a wrong width"
        );
        for (who, want) in actors.iter().zip(&expected) {
            let have = cell(&caller_of(who));
            if *want != have {
                wrong.push(format!(
                    "{action}: {} expected {want}, got {have}",
                    who.name
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the policy changed:\n{}",
        wrong.join("\n")
    );
}

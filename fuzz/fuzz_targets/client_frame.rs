//! A text frame from a client, as the connection reader parses it
//! (`ClientFrame::parse`, server/src/connection/reader.rs).
//!
//! Properties: parsing never panics; a refused frame is a `bad_request` with a message
//! and, when it names the frame's `id`, an id within the limit; an accepted frame
//! encodes back to JSON that parses to the same frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_protocol::{ClientFrame, ErrorCode, MAX_FRAME_ID_CHARS};

fuzz_target!(|data: &[u8]| {
    // A WebSocket text message is valid UTF-8 (tungstenite checks it before the
    // reader sees it).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientFrame::parse(text) {
        Ok(parsed) => {
            if let Some(id) = &parsed.id {
                assert!(
                    id.chars().count() <= MAX_FRAME_ID_CHARS,
                    "id over the limit"
                );
            }
            let encoded = parsed.to_json();
            let again = ClientFrame::parse(&encoded)
                .unwrap_or_else(|e| panic!("re-encoded frame refused: {e:?}\n{encoded}"));
            assert_eq!(
                again, parsed,
                "frame changed across encode/parse: {encoded}"
            );
            assert_eq!(again.to_json(), encoded, "encoding is not stable");
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::BadRequest, "{e:?}");
            assert!(!e.message.is_empty(), "refusal without a message");
            if let Some(id) = &e.id {
                assert!(
                    id.chars().count() <= MAX_FRAME_ID_CHARS,
                    "echoed id over the limit"
                );
            }
        }
    }
});

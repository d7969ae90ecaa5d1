//! Knowledge files for the offline agent (`--knowledge-file`).

use std::path::PathBuf;

use serde_json::{Value, json};

use switchboard_testkit::temp_path;

/// A long public document: asking [`REFUND_QUESTION`] gives a long turn (many deltas).
pub const REFUND_DOC_ID: &str = "kb-refunds";
pub const REFUND_TITLE: &str = "Refund policy";
pub const REFUND_URI: &str = "https://help.example.test/refunds";
/// Words that occur only in the refund document.
pub const REFUND_QUESTION: &str = "What is the refund policy for refunds?";

/// A public document about something else: never matches [`REFUND_QUESTION`].
pub const SHIPPING_DOC_ID: &str = "kb-shipping";

/// A group-restricted document whose only distinctive word is [`PRIVATE_WORD`].
pub const PRIVATE_DOC_ID: &str = "kb-payroll";
pub const PRIVATE_WORD: &str = "zebracorn";
/// An org-wide document (no ACL): invisible to anonymous connections.
pub const ORGWIDE_DOC_ID: &str = "kb-orgwide";
pub const ORGWIDE_WORD: &str = "quokkamatic";

/// A question no document matches.
pub const UNMATCHED_QUESTION: &str = "xylophonic brontosaurus quizzing";

fn refund_text() -> String {
    [
        "Our refund policy is simple.",
        "Refunds are available within thirty days of purchase for every annual plan and every monthly plan.",
        "To request refunds, open the billing page, choose the invoice, and press the refund button;",
        "the refund request then goes to the billing team, who review each refund within two business days.",
        "Approved refunds return to the original card, and a refund usually appears on the statement within five to ten days.",
        "Partial refunds apply when a plan was upgraded in the middle of a cycle, and the refund covers the unused part only.",
        "Refunds are not available for usage overages, domain registrations, or gift cards, and a refund never includes taxes already remitted.",
        "If a refund is late, contact support with the invoice number and the date of the refund request.",
    ]
    .join(" ")
}

/// The standard document set used by most tests.
pub fn standard_docs() -> Value {
    json!([
        {
            "doc_id": REFUND_DOC_ID,
            "title": REFUND_TITLE,
            "uri": REFUND_URI,
            "text": refund_text(),
            "acl": { "public": true }
        },
        {
            "doc_id": SHIPPING_DOC_ID,
            "title": "Shipping times",
            "text": "Parcels leave our warehouse daily. Couriers deliver domestic parcels within three days and international parcels within ten days. Tracking numbers arrive by email.",
            "acl": { "public": true }
        },
        {
            "doc_id": PRIVATE_DOC_ID,
            "title": "Payroll calendar",
            "text": format!("The {PRIVATE_WORD} payroll secret: salaries are paid on the {PRIVATE_WORD} day, confidential figures 987654."),
            "acl": { "groups": ["finance"] }
        },
        {
            "doc_id": ORGWIDE_DOC_ID,
            "title": "Internal handbook",
            "text": format!("The {ORGWIDE_WORD} handbook is for staff only; internal code 13579.")
        }
    ])
}

/// Write `docs` to a fresh JSON file and return its path.
pub fn write_file(docs: &Value) -> PathBuf {
    let path = temp_path("knowledge", "json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(docs).expect("serialize docs"),
    )
    .expect("write knowledge file");
    path
}

/// Write the standard document set and return its path as a `String` (for args).
pub fn standard_file() -> String {
    write_file(&standard_docs()).to_string_lossy().into_owned()
}

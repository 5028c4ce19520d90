//! COPY ... TO STDOUT: query rows as CopyData in text, CSV or binary format.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::datatypes::SchemaRef;
use futures::{Stream, StreamExt, stream};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, Response};
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;

use crate::encode::{encode_copy, field_infos};
use crate::error::{ResultBudget, datafusion_to_pgwire};
use crate::panics::unpanicked_stream;
use crate::session::{CopyFormat, CopyKind};

/// The CopyOut response sending `batches` in `format`, timestamps shown in
/// `zone`; more than `limit` encoded bytes (0: no limit) ends it with 54000,
/// as `lambdadb.max_result_size` does for query results.
pub fn copy_out(
    schema: SchemaRef,
    batches: impl Stream<Item = datafusion::error::Result<arrow::record_batch::RecordBatch>>
    + Send
    + 'static,
    format: &CopyFormat,
    zone: Option<chrono_tz::Tz>,
    limit: u64,
) -> Response {
    let binary = format.kind == CopyKind::Binary;
    let fields = Arc::new(field_infos(
        &schema,
        if binary {
            &Format::UnifiedBinary
        } else {
            &Format::UnifiedText
        },
    ));
    let mut encoder = match format.kind {
        CopyKind::Text => CopyEncoder::new_text(
            fields.clone(),
            CopyTextOptions {
                delimiter: format.delimiter.unwrap_or('\t').to_string().into(),
                null_string: format.null.clone().unwrap_or_else(|| "\\N".into()).into(),
            },
        ),
        CopyKind::Csv => CopyEncoder::new_csv(
            fields.clone(),
            CopyCsvOptions {
                delimiter: format.delimiter.unwrap_or(',').to_string().into(),
                null_string: format.null.clone().unwrap_or_default().into(),
                ..CopyCsvOptions::default()
            },
        ),
        CopyKind::Binary => CopyEncoder::new_binary(fields.clone()),
    };
    let header: Vec<PgWireResult<CopyData>> = if format.header && format.kind == CopyKind::Csv {
        let d = format.delimiter.unwrap_or(',');
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| csv_quote(lambdadb_pgcompat::naming::display_name(f.name()), d))
            .collect();
        vec![Ok(CopyData::new(
            format!("{}\n", names.join(&d.to_string())).into(),
        ))]
    } else {
        vec![]
    };
    let encode_with = fields.clone();
    // pgwire's binary encoder sends the file header with the first row and
    // appends the trailer itself; with no rows the header is sent here.
    let wrote_rows = Arc::new(AtomicBool::new(false));
    let wrote = wrote_rows.clone();
    let mut budget = ResultBudget::new(limit);
    let rows = batches
        .map(move |batch| {
            let encoded = batch
                .map_err(datafusion_to_pgwire)
                .and_then(|b| encode_copy(&b, &encode_with, &mut encoder, zone))
                .and_then(|rows| {
                    budget.spend(rows.iter().map(|r| r.data.len() as u64).sum())?;
                    Ok(rows)
                });
            match encoded {
                Ok(rows) => {
                    if !rows.is_empty() {
                        wrote.store(true, Ordering::SeqCst);
                    }
                    stream::iter(rows.into_iter().map(Ok).collect::<Vec<_>>())
                }
                Err(e) => stream::iter(vec![Err(e)]),
            }
        })
        .flatten();
    let empty_header = stream::once(async move {
        (binary && !wrote_rows.load(Ordering::SeqCst))
            .then(|| Ok(CopyData::new(BINARY_HEADER.to_vec().into())))
    })
    .filter_map(|h| async move { h });
    let all = stream::iter(header).chain(rows).chain(empty_header);
    Response::CopyOut(CopyResponse::new(
        i8::from(binary),
        fields.len(),
        unpanicked_stream(all),
    ))
}

/// `PGCOPY\n\xff\r\n\0`, then flags and header-extension length, both 0.
const BINARY_HEADER: [u8; 19] = *b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

fn csv_quote(s: &str, delimiter: char) -> String {
    if s.contains(delimiter) || s.contains('"') || s.contains('\n') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

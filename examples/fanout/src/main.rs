//! Fan-out/fan-in: `batch/analyze` starts one `words/count` call per document at once, then
//! waits for all of them (while it waits, nothing runs: the invocation is suspended until the
//! children's results are in) and joins the counts.

use lambda_handler_sdk::prelude::*;
use lambda_handler_sdk::{serve, service, Context, Endpoint, HandlerError};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Summary {
    pub documents: usize,
    pub total_words: u64,
    pub per_document: Vec<u64>,
}

#[service(name = "words")]
pub trait Words {
    async fn count(&self, ctx: Context, text: String) -> Result<u64, HandlerError>;
}

#[service(name = "batch")]
pub trait Batch {
    async fn analyze(&self, ctx: Context, documents: Vec<String>) -> Result<Summary, HandlerError>;
}

struct Counter;

impl Words for Counter {
    async fn count(&self, ctx: Context, text: String) -> Result<u64, HandlerError> {
        Ok(ctx
            .run("count", || async {
                Ok(text.split_whitespace().count() as u64)
            })
            .await?)
    }
}

struct Analyzer;

impl Batch for Analyzer {
    async fn analyze(&self, ctx: Context, documents: Vec<String>) -> Result<Summary, HandlerError> {
        let words = WordsClient::new(&ctx);
        let counts = documents.iter().map(|doc| words.count(doc)).collect();
        let mut per_document = Vec::with_capacity(documents.len());
        for count in ctx.all(counts).await {
            per_document.push(count?);
        }
        Ok(Summary {
            documents: documents.len(),
            total_words: per_document.iter().sum(),
            per_document,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    lambda_handler_sdk::init_tracing();
    serve(endpoint()).await
}

/// What this Lambda serves.
fn endpoint() -> Endpoint {
    Endpoint::new()
        .service(Analyzer.into_service())
        .service(Counter.into_service())
}

#[cfg(test)]
mod tests {
    //! Fan-out in-process with the test kit: one child per document, joined in order. The
    //! deployed example is tested end to end in `localstack-tests/tests/e2e.rs`.

    use super::*;
    use durable_testing::TestRunner;

    #[tokio::test]
    async fn every_document_is_counted_by_its_own_child_and_joined_in_order() {
        let runner = TestRunner::new(endpoint());
        let docs = vec!["a b c".to_owned(), String::new(), "one two".to_owned()];
        let summary: Summary = runner.invoke("batch", "analyze", &docs).await.unwrap();
        assert_eq!((summary.documents, summary.total_words), (3, 5));
        assert_eq!(summary.per_document, vec![3, 0, 2]);
        assert_eq!(
            runner.invocations().len(),
            4,
            "the batch and three children"
        );
        assert_eq!(runner.step_runs("count"), 3);
    }
}

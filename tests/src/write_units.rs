//! DynamoDB write units, metered the way DynamoDB bills them, for the counting proxy.
//!
//! moto reports no consumed capacity for indexes, so the meter works it out from the
//! items themselves: before a write passes through, it reads each item the write
//! touches (a consistent `GetItem`), and reads it again after. From DynamoDB's pricing
//! and developer guide:
//! - a write costs one unit per started KB of the larger of the item before and after
//!   (at least one, a failed condition included); a transactional write costs two;
//! - each global secondary index the item is in before or after costs more: putting
//!   the item into the index one unit per started KB of what the index projects,
//!   taking it out one, changing its index key both, and updating it in place one,
//!   only if an attribute the index projects changed.
//!
//! Item size follows the guide's rules (name bytes plus value bytes; numbers about one
//! byte per two digits; lists and maps 3 bytes plus 1 per element), which is close
//! enough to decide the units of items well under or over a KB boundary.

use serde_json::{Value, json};
use std::collections::HashMap;

const KB: usize = 1024;

#[derive(Clone, Debug)]
enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

#[derive(Clone, Debug)]
struct Index {
    keys: Vec<String>,
    projection: Projection,
}

#[derive(Clone, Debug)]
struct Table {
    keys: Vec<String>,
    indexes: Vec<Index>,
}

/// One item a write request touches.
struct Touched {
    table: String,
    key: Value,
    transactional: bool,
}

/// Reads items and table shapes from the emulator, signed as the request it meters was.
pub struct WriteMeter {
    upstream: String,
    client: reqwest::Client,
    tables: tokio::sync::Mutex<HashMap<String, Table>>,
}

impl WriteMeter {
    pub fn new(upstream: &str, client: reqwest::Client) -> Self {
        Self { upstream: upstream.to_owned(), client, tables: Default::default() }
    }

    /// Whether `operation` (the proxy's `service:Operation`) writes to DynamoDB.
    pub fn meters(operation: &str) -> bool {
        matches!(
            operation,
            "dynamodb:PutItem"
                | "dynamodb:UpdateItem"
                | "dynamodb:DeleteItem"
                | "dynamodb:TransactWriteItems"
                | "dynamodb:BatchWriteItem"
        )
    }

    async fn call(&self, authorization: &str, operation: &str, body: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/", self.upstream))
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header("authorization", authorization)
            .body(body.to_string())
            .send()
            .await;
        match response {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    async fn table(&self, authorization: &str, name: &str) -> Table {
        if let Some(table) = self.tables.lock().await.get(name) {
            return table.clone();
        }
        let described =
            self.call(authorization, "DescribeTable", json!({ "TableName": name })).await;
        let key_names = |schema: &Value| -> Vec<String> {
            schema
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k["AttributeName"].as_str().map(str::to_owned))
                .collect()
        };
        let table = &described["Table"];
        let indexes = table["GlobalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|index| {
                let projection = match index["Projection"]["ProjectionType"].as_str() {
                    Some("KEYS_ONLY") => Projection::KeysOnly,
                    Some("INCLUDE") => Projection::Include(
                        index["Projection"]["NonKeyAttributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|a| a.as_str().map(str::to_owned))
                            .collect(),
                    ),
                    _ => Projection::All,
                };
                Index { keys: key_names(&index["KeySchema"]), projection }
            })
            .collect();
        let shape = Table { keys: key_names(&table["KeySchema"]), indexes };
        self.tables.lock().await.insert(name.to_owned(), shape.clone());
        shape
    }

    async fn items(&self, authorization: &str, touched: &[Touched]) -> Vec<Option<Value>> {
        let mut items = Vec::with_capacity(touched.len());
        for t in touched {
            let body = json!({ "TableName": t.table, "Key": t.key, "ConsistentRead": true });
            let found = self.call(authorization, "GetItem", body).await;
            items.push(found.get("Item").filter(|item| item.is_object()).cloned());
        }
        items
    }

    /// The items `body` (a request named `operation`) writes to.
    async fn touched(&self, authorization: &str, operation: &str, body: &Value) -> Vec<Touched> {
        let mut writes: Vec<(String, Value, bool)> = Vec::new();
        match operation {
            "dynamodb:PutItem" => {
                writes.push((text(&body["TableName"]), body["Item"].clone(), false))
            }
            "dynamodb:UpdateItem" | "dynamodb:DeleteItem" => {
                writes.push((text(&body["TableName"]), body["Key"].clone(), false))
            }
            "dynamodb:TransactWriteItems" => {
                for item in body["TransactItems"].as_array().into_iter().flatten() {
                    if let Some(put) = item.get("Put") {
                        writes.push((text(&put["TableName"]), put["Item"].clone(), true));
                    }
                    for kind in ["Update", "Delete", "ConditionCheck"] {
                        if let Some(write) = item.get(kind) {
                            writes.push((text(&write["TableName"]), write["Key"].clone(), true));
                        }
                    }
                }
            }
            "dynamodb:BatchWriteItem" => {
                for (table, requests) in body["RequestItems"].as_object().into_iter().flatten() {
                    for request in requests.as_array().into_iter().flatten() {
                        let item = request["PutRequest"]["Item"].clone();
                        let item = if item.is_null() {
                            request["DeleteRequest"]["Key"].clone()
                        } else {
                            item
                        };
                        writes.push((table.clone(), item, false));
                    }
                }
            }
            _ => {}
        }
        let mut touched = Vec::with_capacity(writes.len());
        for (table, item, transactional) in writes {
            let shape = self.table(authorization, &table).await;
            touched.push(Touched { key: pick(&item, &shape.keys), table, transactional });
        }
        touched
    }

    /// Meters one write request: reads what it touches, runs `forward`, reads again.
    pub async fn around<F, R>(
        &self,
        authorization: &str,
        operation: &str,
        body: &[u8],
        forward: F,
    ) -> (R, u64)
    where
        F: std::future::Future<Output = R>,
    {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let touched = self.touched(authorization, operation, &body).await;
        let before = self.items(authorization, &touched).await;
        let result = forward.await;
        let after = self.items(authorization, &touched).await;
        let mut units = 0;
        for ((t, old), new) in touched.iter().zip(&before).zip(&after) {
            let shape = self.table(authorization, &t.table).await;
            units += write_units(&shape, old.as_ref(), new.as_ref(), t.transactional);
        }
        (result, units)
    }
}

/// Read units, in halves, that a read request and its answer cost as DynamoDB bills
/// them: per item (`GetItem`, each key of a `BatchGetItem`) or per request (`Query`, on
/// the sum of the items returned), one unit per started 4 KB, at least one even when
/// nothing is found; half that when the read is eventually consistent. A `Query` with
/// a filter is billed on what it read before filtering, which the answer does not
/// show: this counts what it returned.
pub fn read_half_units(operation: &str, request: &Value, response: &Value) -> u64 {
    let units = |size: usize| size.div_ceil(4 * KB).max(1) as u64;
    let halves = |consistent: &Value| if consistent.as_bool() == Some(true) { 2 } else { 1 };
    match operation {
        "dynamodb:GetItem" => {
            let size = response.get("Item").map_or(0, item_size);
            units(size) * halves(&request["ConsistentRead"])
        }
        "dynamodb:Query" => {
            let items = response["Items"].as_array().into_iter().flatten();
            units(items.map(item_size).sum()) * halves(&request["ConsistentRead"])
        }
        "dynamodb:BatchGetItem" => {
            let mut total = 0;
            for (table, asked) in request["RequestItems"].as_object().into_iter().flatten() {
                let keys = asked["Keys"].as_array().map_or(0, Vec::len) as u64;
                let found = response["Responses"][table].as_array().cloned().unwrap_or_default();
                let found_units: u64 = found.iter().map(|item| units(item_size(item))).sum();
                let missing = keys.saturating_sub(found.len() as u64);
                total += (found_units + missing) * halves(&asked["ConsistentRead"]);
            }
            total
        }
        _ => 0,
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The named attributes of `item`, as an item.
fn pick(item: &Value, names: &[String]) -> Value {
    let mut picked = serde_json::Map::new();
    for name in names {
        if let Some(value) = item.get(name) {
            picked.insert(name.clone(), value.clone());
        }
    }
    Value::Object(picked)
}

fn units(size: usize) -> u64 {
    size.div_ceil(KB).max(1) as u64
}

fn write_units(
    table: &Table,
    old: Option<&Value>,
    new: Option<&Value>,
    transactional: bool,
) -> u64 {
    let size = old.map_or(0, item_size).max(new.map_or(0, item_size));
    let mut total = units(size) * if transactional { 2 } else { 1 };
    for index in &table.indexes {
        total += index_units(table, index, old, new);
    }
    total
}

/// What `index` holds of `item`, if the item is in it (it has every index key).
fn projected(table: &Table, index: &Index, item: Option<&Value>) -> Option<Value> {
    let item = item?;
    if index.keys.iter().any(|k| item.get(k).is_none()) {
        return None;
    }
    let mut names: Vec<String> = index.keys.iter().chain(&table.keys).cloned().collect();
    match &index.projection {
        Projection::All => return Some(item.clone()),
        Projection::KeysOnly => {}
        Projection::Include(extra) => names.extend(extra.iter().cloned()),
    }
    Some(pick(item, &names))
}

fn index_units(table: &Table, index: &Index, old: Option<&Value>, new: Option<&Value>) -> u64 {
    let (old, new) = (projected(table, index, old), projected(table, index, new));
    match (old, new) {
        (None, None) => 0,
        (None, Some(new)) => units(item_size(&new)),
        (Some(old), None) => units(item_size(&old)),
        (Some(old), Some(new)) => {
            if pick(&old, &index.keys) != pick(&new, &index.keys) {
                units(item_size(&old)) + units(item_size(&new))
            } else if old != new {
                units(item_size(&old).max(item_size(&new)))
            } else {
                0
            }
        }
    }
}

/// An item's size in bytes, by DynamoDB's rules.
pub fn item_size(item: &Value) -> usize {
    item.as_object().into_iter().flatten().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let number =
        |n: &str| n.trim_start_matches('-').replace('.', "").trim_matches('0').len() / 2 + 1;
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner.as_str().map_or(1, number),
        "B" => inner.as_str().map_or(0, |b| b.len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" => {
            inner.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::len).sum()
        }
        "NS" => inner.as_array().into_iter().flatten().filter_map(Value::as_str).map(number).sum(),
        "L" => 3 + inner.as_array().into_iter().flatten().map(|v| value_size(v) + 1).sum::<usize>(),
        "M" => {
            3 + inner
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, v)| name.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(projection: Projection) -> Table {
        Table {
            keys: vec!["PK".into(), "SK".into()],
            indexes: vec![Index { keys: vec!["G".into()], projection }],
        }
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(item_size(&json!({"PK": {"S": "abc"}})), 5);
        assert_eq!(item_size(&json!({"n": {"N": "12345"}})), 1 + 3);
        assert_eq!(item_size(&json!({"l": {"L": [{"S": "ab"}, {"BOOL": true}]}})), 1 + 3 + 3 + 2);
    }

    #[test]
    fn a_put_into_an_index_costs_one_more_and_an_unprojected_update_nothing() {
        let old = json!({"PK": {"S": "a"}, "SK": {"S": "#"}, "G": {"S": "g"}, "x": {"S": "1"}});
        let new = json!({"PK": {"S": "a"}, "SK": {"S": "#"}, "G": {"S": "g"}, "x": {"S": "2"}});
        let keys_only = table(Projection::KeysOnly);
        assert_eq!(write_units(&keys_only, None, Some(&old), false), 2);
        assert_eq!(write_units(&keys_only, Some(&old), Some(&new), false), 1);
        assert_eq!(write_units(&table(Projection::All), Some(&old), Some(&new), false), 2);
        assert_eq!(write_units(&keys_only, Some(&old), Some(&new), true), 2);
        let big = json!({"PK": {"S": "a"}, "SK": {"S": "#"}, "x": {"S": "y".repeat(1500)}});
        assert_eq!(write_units(&keys_only, None, Some(&big), false), 2, "1.5 KB, no index");
    }
}

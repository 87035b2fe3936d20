use serde::Deserialize;
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct T { pub a: u32, pub inner: Inner }
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Inner { pub b_c: String }
#[cfg(test)]
mod t {
  #[test] fn x() {
    let e = serde_saphyr::from_str::<super::T>("a: 1\ninner:\n  bC: x\n  zz: 2\n").unwrap_err();
    println!("ERR1: {e}\nDBG: {e:?}");
    let e = serde_saphyr::from_str::<super::T>("a: x\ninner:\n  bC: x\n").unwrap_err();
    println!("ERR2: {e}");
    let d = serde_saphyr::from_str::<k8s_openapi::api::apps::v1::Deployment>("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: i, ports: [{containerPort: 80, name: http}]}]\n");
    println!("{d:?}");
  }
}

//! A run's inputs and params: read from JSON exactly, against their declared types.

use super::Runtime;
use crate::analysis::Analysis;
use crate::error::{Error, Result};
use crate::event::Named;
use crate::value::{self, DecodeError, Value};
use flow_ir::plan::NodeKind;
use flow_ir::ty::Ty;
use serde_json::Value as Json;

pub(crate) fn input_error(error: DecodeError) -> Error {
    Error::Input(format!("input {}: {}", error.path, error.message))
}

impl Runtime {
    /// Reads the inputs of a run, each checked against its declared type.
    pub(super) fn inputs(&self, analysis: &Analysis, given: &[(String, Json)]) -> Result<Vec<Named<Value>>> {
        let body = analysis.body();
        let declared = || body.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Input { .. }));
        if let Some((name, _)) = given.iter().find(|(n, _)| !declared().any(|d| d.name == n)) {
            let names: Vec<&str> = declared().map(|d| d.name.as_str()).collect();
            return Err(Error::Input(format!("the flow has no input `{name}`; its inputs are {}", names.join(", "))));
        }
        let mut inputs = Vec::with_capacity(declared().count());
        for node in declared() {
            let value = match given.iter().find(|(n, _)| n == node.name.as_str()) {
                Some((_, json)) => {
                    // The input's path, written only for an error.
                    let path = format_args!("$.{}", node.name);
                    let value = value::decode(body, json, &node.ty, "").map_err(|mut error| {
                        error.path.insert_str(0, &path.to_string());
                        input_error(error)
                    })?;
                    if let Some(directory) = self.directory()
                        && let Some((path, id)) = value::unknown_principal(&value, &path, |id| directory.contains(id))
                    {
                        return Err(Error::Input(format!(
                            "input {path}: `{id}` is not a principal of this deployment"
                        )));
                    }
                    value
                }
                None if node.ty.is_optional() => Value::Absent,
                None => {
                    return Err(Error::Input(format!(
                        "input `{}` of type `{}` is missing (give it with `--input {}=FILE.json`)",
                        node.name, node.ty, node.name
                    )));
                }
            };
            inputs.push(Named { name: node.name.clone(), value });
        }
        Ok(inputs)
    }

    pub(super) fn params(&self, analysis: &Analysis, set: &[(String, Json)]) -> Result<Vec<Named<Value>>> {
        let body = analysis.body();
        let mut params = Vec::with_capacity(analysis.param_defaults().len());
        for (name, _) in set {
            if !body.nodes.iter().any(|n| n.name == name.as_str() && matches!(n.kind, NodeKind::Param { .. })) {
                return Err(Error::Input(format!("the flow has no param `{name}`")));
            }
        }
        for (name, default) in analysis.param_defaults() {
            let value = match set.iter().find(|(n, _)| n == name.as_str()) {
                Some((_, json)) => {
                    let ty = body.node(name).map_or(Ty::Nothing, |n| n.ty.clone());
                    value::decode(body, json, &ty, &format!("$.{name}")).map_err(input_error)?
                }
                None => default.clone().map_err(|e| Error::Input(format!("param `{name}`: {e}")))?,
            };
            params.push(Named { name: name.clone(), value });
        }
        Ok(params)
    }
}

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
        self.inputs_of(analysis, (given.len(), |i| given[i].0.as_str()), |i, node| {
            // The input's path, written only for an error.
            value::decode(body, &given[i].1, &node.ty, "").map_err(|mut error| {
                error.path.insert_str(0, &format!("$.{}", node.name));
                input_error(error)
            })
        })
    }

    /// [`Runtime::inputs`] of values already read against their declared types
    /// ([`crate::read::case_inputs`]): the same checks of names and principals.
    pub(super) fn inputs_read(&self, analysis: &Analysis, given: Vec<(String, Value)>) -> Result<Vec<Named<Value>>> {
        let (names, values): (Vec<String>, Vec<Value>) = given.into_iter().unzip();
        let mut values: Vec<Option<Value>> = values.into_iter().map(Some).collect();
        // A name given twice is refused before any value is taken (`inputs_of`).
        self.inputs_of(analysis, (names.len(), |i| names[i].as_str()), |i, _| {
            values[i].take().ok_or_else(|| Error::Input("an input read twice".to_owned()))
        })
    }

    /// The inputs of a run given as `count` names (the `i`th `name_of(i)`), the value of the
    /// `i`th as `value_of` reads it for its declared node: an input the flow does not
    /// declare, one given twice (the run would read one value and its evidence digest the
    /// other), or one it requires and is not given, is refused, and so is a principal the
    /// deployment does not know.
    fn inputs_of<'n>(
        &self,
        analysis: &Analysis,
        (count, name_of): (usize, impl Fn(usize) -> &'n str),
        mut value_of: impl FnMut(usize, &flow_ir::plan::Node) -> Result<Value>,
    ) -> Result<Vec<Named<Value>>> {
        let body = analysis.body();
        let declared = || body.nodes.iter().filter(|n| matches!(n.kind, NodeKind::Input { .. }));
        let names = || (0..count).map(&name_of);
        if let Some(name) = names().find(|n| !declared().any(|d| d.name == *n)) {
            let names: Vec<&str> = declared().map(|d| d.name.as_str()).collect();
            return Err(Error::Input(format!("the flow has no input `{name}`; its inputs are {}", names.join(", "))));
        }
        if let Some(name) = names().enumerate().find_map(|(i, n)| names().skip(i + 1).any(|m| m == n).then_some(n)) {
            return Err(Error::Input(format!("input `{name}` is given twice")));
        }
        let mut inputs = Vec::with_capacity(declared().count());
        for node in declared() {
            let value = match names().position(|n| n == node.name.as_str()) {
                Some(i) => {
                    let path = format_args!("$.{}", node.name);
                    let value = value_of(i, node)?;
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

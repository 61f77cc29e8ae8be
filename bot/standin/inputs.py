"""What a modal's inputs hold on the person's screen: the state Slack's client keeps, not the app.

Rules, from Slack's documentation of `views.update` ("Preserving input entry: data entered or
selected in input blocks can be preserved while updating views. The new view ... should contain
the same input blocks and elements with identical block_id and action_id values"):

- an input that the updated view repeats with the same `block_id`, `action_id` and element type
  keeps what it held; the new `initial_*` is ignored;
- any other input shows its new `initial_*`; one that first appeared in a `views.update` and was
  left untouched comes back as null in `view.state.values` (reported against bolt and Block Kit
  builders: values loaded through `views.update` are missing on submission until edited).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

EMPTY: dict[str, Any] = {
    "plain_text_input": {"value": None},
    "static_select": {"selected_option": None},
    "datepicker": {"selected_date": None},
    "checkboxes": {"selected_options": []},
}


@dataclass
class Input:
    block_id: str
    action_id: str
    kind: str
    state: dict[str, Any]
    options: list[dict[str, Any]]
    from_update: bool = False  # first shown by views.update
    touched: bool = False

    def submitted(self) -> dict[str, Any]:
        state = EMPTY[self.kind] if self.from_update and not self.touched else self.state
        return {"type": self.kind, **copy.deepcopy(state)}

    def enter(self, given: Any) -> None:
        """The person types or picks `given` (a text, an option value, a date, a list of values)."""
        if self.kind == "plain_text_input":
            self.state = {"value": given}
        elif self.kind == "static_select":
            self.state = {"selected_option": next((o for o in self.options if o["value"] == given), None)}
        elif self.kind == "datepicker":
            self.state = {"selected_date": given}
        elif self.kind == "checkboxes":
            self.state = {"selected_options": [o for o in self.options if o["value"] in (given or [])]}
        self.touched = True


def _initial(element: dict[str, Any]) -> dict[str, Any] | None:
    kind = element.get("type")
    if kind == "plain_text_input":
        return {"value": element.get("initial_value")}
    if kind == "static_select":
        return {"selected_option": element.get("initial_option")}
    if kind == "datepicker":
        return {"selected_date": element.get("initial_date")}
    if kind == "checkboxes":
        return {"selected_options": list(element.get("initial_options", []))}
    return None


def shown(view: dict[str, Any], before: dict[str, Input] | None = None) -> dict[str, Input]:
    """The inputs of `view` as the client shows them; `before`: what the replaced view held."""
    out: dict[str, Input] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        el = block["element"]
        initial = _initial(el)
        if initial is None:
            continue
        bid, aid, kind = block["block_id"], el["action_id"], el["type"]
        old = (before or {}).get(bid)
        if old is not None and (old.action_id, old.kind) == (aid, kind):
            out[bid] = old  # kept as it was: the new initial value is ignored
            old.options = el.get("options", [])
            continue
        out[bid] = Input(bid, aid, kind, initial, el.get("options", []), from_update=before is not None)
    return out


def find(inputs: dict[str, Input], name: str) -> Input | None:
    """The input with block id `name`, or whose block id is `name` followed by a '.' suffix."""
    if name in inputs:
        return inputs[name]
    return next((i for bid, i in inputs.items() if bid.startswith(name + ".")), None)


def state_values(inputs: dict[str, Input]) -> dict[str, Any]:
    return {i.block_id: {i.action_id: i.submitted()} for i in inputs.values()}

"""The playground UI: try a model, map its classes, register it in V7, and watch the requests it gets.

Run by `python run.py` (or `python run.py ui --api-url URL`). Every result comes from the endpoint
over HTTP, built the way V7 builds its calls: what you see is what V7 would get. The logic lives in
the pure modules beside this script; this file only lays out widgets.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from PIL import Image

from models.darwin_json import darwin_json_from_results
from models.samples import SAMPLES, sample_bytes
from playground import boxes, overlay, register, requests_view, selfcheck
from playground import classes as class_mapping
from playground.client import Call, Credentials, EndpointClient, EndpointError, build_infer_request, request_for_display
from playground.picture_server import PictureServer
from playground.pictures import UPLOAD_TYPES, Picture, PictureError, jpeg_bytes, load_picture, resized

API_URL = os.environ.get("BYOM_PLAYGROUND_API_URL", "http://127.0.0.1:8000")
#: Set by `python run.py`, which runs the API on this machine with the same model folders: the UI may
#: then download missing model files itself, with a progress bar.
LOCAL_API = os.environ.get("BYOM_PLAYGROUND_LOCAL_API") == "1"
DEFAULT_ENDPOINT = "__default__"
OUTCOME_COLORS = {selfcheck.PASSED: "#1a7f37", selfcheck.FAILED: "#cf222e", selfcheck.SKIPPED: "#6e7781"}
RESULT_DISPLAY_MAX_WH = (1000, 800)
#: Long answers scroll inside a box of this height instead of stretching the page.
JSON_BOX_HEIGHT_PX = 420


@dataclass
class Endpoint:
    client: EndpointClient
    health: dict[str, Any] | None
    models: dict[str, Any] | None

    @property
    def is_ours(self) -> bool:
        """This project's server (GET /models answers), not just any BYOM endpoint."""
        return self.models is not None

    def model_names(self) -> list[str]:
        return [m["name"] for m in (self.models or {}).get("models", [])]

    def model(self, name: str) -> dict[str, Any]:
        return next(m for m in self.models["models"] if m["name"] == name)

    def classes(self, model: str | None) -> list[class_mapping.EndpointClass]:
        if self.models is not None:
            return class_mapping.endpoint_classes(self.models, model)
        try:
            return [class_mapping.EndpointClass(c["name"], c["type"]) for c in self.client.classes(model)]
        except (EndpointError, KeyError, TypeError):
            return []


@st.cache_resource(show_spinner=False)
def get_client(url: str, credentials: Credentials) -> EndpointClient:
    return EndpointClient(url, credentials)


@st.cache_data(show_spinner=False, max_entries=8)
def cached_sample(name: str) -> bytes:
    return sample_bytes(name, "jpeg")


@st.cache_resource(show_spinner=False, max_entries=4)  # a resource: a large photo is not copied on each rerun
def cached_picture(data: bytes, name: str) -> Picture:
    return load_picture(data, name)


@st.cache_resource(show_spinner=False, max_entries=8)
def display_copy(picture_id: str, size_wh: tuple[int, int], _picture: Picture) -> Image.Image:
    """The picture shrunk (or enlarged) for display, made once per picture and size."""
    return resized(_picture.image, size_wh)


@st.cache_resource(show_spinner=False, max_entries=4)
def canvas_background(picture_id: str, size_wh: tuple[int, int], _picture: Picture) -> bytes:
    return jpeg_bytes(display_copy(picture_id, size_wh, _picture), quality=85)


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:12]


def model_label(endpoint: Endpoint, name: str) -> str:
    if name == DEFAULT_ENDPOINT:
        members = " + ".join((endpoint.models or {}).get("default_models", [])) or "the endpoint's models"
        return f"Default endpoint: {members}"
    model = endpoint.model(name)
    if model.get("available"):
        return name
    return f"{name} (unavailable: {'failed to load' if model.get('error') else 'model files missing'})"


def color_by_class(table: pd.DataFrame, colors: dict[str, tuple[int, int, int]]):
    """The results table with each class cell in its overlay colour (the table doubles as the legend)."""

    def cell_style(name: object) -> str:
        rgb = colors.get(str(name))
        if rgb is None:
            return ""
        text = "#000" if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 else "#fff"
        return f"background-color: rgb{tuple(rgb)}; color: {text}"

    return table.style.map(cell_style, subset=["class"]).format({"confidence": "{:.3f}"})


def one_per_line(items: list[Any]) -> str:
    """A JSON array with one compact item per line: short lists such as /classes stay readable."""
    return "[\n" + ",\n".join("  " + json.dumps(item) for item in items) + "\n]"


# -- sidebar: the endpoint and its models ----------------------------------------------------


def download_missing_files(endpoint: Endpoint, model_name: str) -> None:
    """Fetch a model's missing files into the cache the local API reads, with a progress bar."""
    from models.base import ModelFile
    from models.files import ModelDownloadError, ModelFileLocator

    locator = ModelFileLocator.from_env()
    for entry in endpoint.model(model_name)["files"]:
        model_file = ModelFile(entry["name"], entry["url"], entry.get("sha256"))
        if locator.find(model_file) is not None:
            continue
        bar = st.progress(0.0, text=f"Downloading {model_file.name}…")

        def show(done: int, total: int | None, bar=bar, name=model_file.name) -> None:
            if total:
                bar.progress(min(done / total, 1.0), text=f"{name}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")
            else:
                bar.progress(0.0, text=f"{name}: {done / 1e6:.1f} MB")

        try:
            locator.ensure(model_file, download=True, progress=show)
        except ModelDownloadError as exc:
            st.error(f"Download failed: {exc}")
            return
        bar.progress(1.0, text=f"{model_file.name}: done")
    st.rerun()


def sidebar(endpoint: Endpoint) -> None:
    with st.sidebar:
        st.markdown(f"**Endpoint** `{endpoint.client.base_url}`")
        if endpoint.health is None:
            st.caption("Not this project's server (no /health): Try and Register work, the rest needs it.")
        else:
            st.caption(f"Healthy. The UI calls it with {endpoint.client.credentials.describe()}.")
        if not endpoint.is_ours:
            return
        st.markdown("**Models**")
        for model in endpoint.models["models"]:
            if model["available"]:
                st.markdown(f":green[:material/check_circle:] `{model['name']}`")
                continue
            if model.get("error"):  # a plug-in that failed to load: no file to fetch, show why
                st.markdown(f":red[:material/error:] `{model['name']}`: could not be loaded")
                st.caption(model["error"])
                continue
            st.markdown(f":orange[:material/warning:] `{model['name']}`: files missing")
            if LOCAL_API:
                if st.button(f"Download {model['name']} files", key=f"download_{model['name']}"):
                    download_missing_files(endpoint, model["name"])
            else:
                st.caption("On the server: `python run.py models pull " + model["name"] + "`")


# -- Try -------------------------------------------------------------------------------------


def pick_picture() -> Picture | None:
    source = st.radio("Picture", ["Sample", "Upload"], horizontal=True, key="picture_source")
    if source == "Sample":
        name = st.selectbox("Sample picture", list(SAMPLES), key="sample", format_func=lambda n: f"{n}: {SAMPLES[n]}")
        data, file_name = cached_sample(name), f"{name}.jpg"
    else:
        uploaded = st.file_uploader("Your picture (PNG, JPEG or WebP, any size)", type=list(UPLOAD_TYPES), key="upload")
        if uploaded is None:
            st.info("Upload a picture, or pick a sample.")
            return None
        data, file_name = uploaded.getvalue(), uploaded.name
    try:
        return cached_picture(data, file_name)
    except PictureError as exc:
        st.error(str(exc))
        return None


def reset_box(picture: Picture, picture_id: str) -> None:
    if st.session_state.get("box_picture") == picture_id:
        return
    st.session_state.box_picture = picture_id
    x, y, w, h = boxes.whole_image_xywh(picture.resolution_wh)
    st.session_state.update(box_x=x, box_y=y, box_w=w, box_h=h, last_canvas_box=None)


def draw_canvas(picture: Picture, picture_id: str) -> None:
    """The picture on a drawing canvas; a newly drawn rectangle becomes the box to send."""
    from streamlit_drawable_canvas import st_canvas  # needs a running app: imported only here

    display_wh = boxes.display_size_wh(picture.resolution_wh)
    background = canvas_background(picture_id, display_wh, picture)
    result = st_canvas(
        fill_color="rgba(255, 255, 255, 0.15)",
        stroke_width=2,
        stroke_color="#ff4d4f",
        background_image=background,
        drawing_mode="rect",
        width=display_wh[0],
        height=display_wh[1],
        update_streamlit=True,
        key=f"canvas_{picture_id}",
    )
    drawn = boxes.last_box_from_canvas(result.json_data, display_wh, picture.resolution_wh)
    if drawn is not None and drawn != st.session_state.get("last_canvas_box"):
        st.session_state.last_canvas_box = drawn
        st.session_state.update(box_x=drawn[0], box_y=drawn[1], box_w=drawn[2], box_h=drawn[3], box_mode="Box")
    width, height = picture.resolution_wh
    st.caption(
        f"{picture.name}: {width}×{height} px. Drag on the picture to draw the Auto-Annotate box "
        "(the last one counts; the canvas toolbar undoes and clears)."
    )


def run_inference(endpoint: Endpoint, body: dict[str, Any], model: str | None, via_url: bool, picture: Picture) -> Call:
    with st.spinner("Waiting for the endpoint… the first call to a model loads it, which takes a few seconds."):
        if not via_url:
            return endpoint.client.infer(body, model)
        with PictureServer() as pictures:
            url_body = {**body, "image": {"url": pictures.add(picture.data, picture.name)}}
            return endpoint.client.infer(url_body, model)


def show_results(endpoint: Endpoint, picture: Picture, run: dict[str, Any]) -> None:
    call: Call = run["call"]
    endpoint_classes = run["classes"]
    st.divider()
    status = "no answer" if call.status_code is None else f"HTTP {call.status_code}"
    results = call.body.get("results", []) if isinstance(call.body, dict) else []
    metrics = st.columns(4)
    metrics[0].metric("Status", status)
    metrics[1].metric("Time", f"{call.elapsed_ms:.0f} ms")
    metrics[2].metric("Results", len(results) if isinstance(results, list) else "?")
    metrics[3].metric("Endpoint", run["route"])
    if call.error:
        st.error(f"The endpoint did not give results: {call.error}")
    for warning in (call.body or {}).get("warnings", []) if isinstance(call.body, dict) else []:
        st.warning(warning)

    if call.ok and isinstance(results, list):
        display_wh = boxes.display_size_wh(picture.resolution_wh, RESULT_DISPLAY_MAX_WH, enlarge=True)
        scale_xy = (display_wh[0] / picture.resolution_wh[0], display_wh[1] / picture.resolution_wh[1])
        colors = overlay.class_colors([c.name for c in endpoint_classes] + [str(r.get("label")) for r in results])
        drawn = overlay.draw_results(
            display_copy(run["picture"], display_wh, picture),
            results,
            scale_xy=scale_xy,
            sent_box_xywh=run["box"],
            skeleton_edges={c.name: c.edges for c in endpoint_classes},
            colors=colors,
            show_labels=st.session_state.get("show_labels", True),
        )
        picture_col, table_col = st.columns([5, 3])
        with picture_col:
            st.image(drawn, caption="Results over the picture; dashed white: the box that was sent", width="stretch")
            st.toggle("Class names on the picture", value=True, key="show_labels")
        with table_col:
            types = {c.name: c.type for c in endpoint_classes}
            rows = [
                {
                    "class": r.get("label"),
                    "type": next((k for k in selfcheck.V7_TYPES if k in r), "?"),
                    "confidence": r.get("confidence"),
                }
                for r in results
            ]
            if rows:
                st.dataframe(color_by_class(pd.DataFrame(rows), colors), hide_index=True, width="stretch")
            else:
                st.info("No results: try a lower threshold, a bigger box, or another model.")
            response_text = call.text or json.dumps(call.body)
            st.download_button(
                "Download the response JSON",
                response_text,
                file_name="byom_response.json",
                mime="application/json",
                on_click="ignore",
                width="stretch",
            )
            darwin = darwin_json_from_results(
                results,
                file_name=picture.name,
                width=picture.resolution_wh[0],
                height=picture.resolution_wh[1],
                model_name=run["model"] or "byom-playground",
                class_types=types or None,
            )
            darwin_name = picture.name.rsplit(".", 1)[0] + ".json"
            st.download_button(
                "Download Darwin JSON 2.0",
                json.dumps(darwin, indent=2),
                file_name=darwin_name,
                mime="application/json",
                on_click="ignore",
                width="stretch",
            )

    request_col, response_col = st.columns(2)
    with request_col:
        st.markdown(f"**Request** as V7 sends it: `POST {call.url}`")
        st.json(request_for_display(run["request"]), expanded=3, width="stretch")
    with response_col:
        st.markdown(f"**Response**: {status} in {call.elapsed_ms:.0f} ms")
        with st.container(height=JSON_BOX_HEIGHT_PX, border=True):
            if call.body is not None:
                st.json(call.body, expanded=3)
            else:
                st.code(call.text[:2000] or call.error or "", language=None)


def try_page(endpoint: Endpoint) -> None:
    controls, canvas_col = st.columns([2, 3], gap="large")
    with controls:
        picture = pick_picture()
    if picture is None:
        return
    picture_id = digest(picture.data)
    reset_box(picture, picture_id)
    with canvas_col:
        draw_canvas(picture, picture_id)

    with controls:
        options = [DEFAULT_ENDPOINT, *endpoint.model_names()]
        model_choice = st.selectbox("Model", options, key="model", format_func=lambda n: model_label(endpoint, n))
        model = None if model_choice == DEFAULT_ENDPOINT else model_choice
        threshold = st.slider(
            "Threshold",
            0.0,
            1.0,
            0.5,
            0.05,
            key="threshold",
            help="Sent as V7's `threshold`; results below it are dropped.",
        )
        box_mode = st.radio(
            "Auto-Annotate box",
            ["Box", "Whole picture", "None"],
            horizontal=True,
            key="box_mode",
            captions=None,
            help="Box: the one you drew or typed. Whole picture: what V7 sends for Ctrl/Cmd+Enter. "
            "None: no bbox key at all.",
        )
        cols = st.columns(4)
        for col, key, label in zip(cols, ("box_x", "box_y", "box_w", "box_h"), "xywh", strict=True):
            col.number_input(label, key=key, step=1.0, format="%.1f", disabled=box_mode != "Box")
        with st.expander("Request options"):
            placement = st.radio(
                "Where bbox and threshold go",
                ["top", "data"],
                horizontal=True,
                key="placement",
                format_func=lambda p: {"top": "top level", "data": 'under "data"'}[p],
            )
            transport = st.radio(
                "Picture sent as",
                ["base64", "url"],
                horizontal=True,
                key="transport",
                format_func=lambda t: {"base64": "image.base64", "url": "image.url (served from this machine)"}[t],
                help="image.url: the UI serves the picture under a presigned-style URL; a local "
                "API needs --allow-private-urls (python run.py sets it).",
            )

        box = None
        if box_mode == "Box":
            box = tuple(float(st.session_state[k]) for k in ("box_x", "box_y", "box_w", "box_h"))
            problem = boxes.check_typed_box(box, picture.resolution_wh)
            if problem:
                st.warning(problem)
        elif box_mode == "Whole picture":
            box = boxes.whole_image_xywh(picture.resolution_wh)
            problem = None
        else:
            problem = None
        st.session_state.selfcheck_input = (picture, box or boxes.whole_image_xywh(picture.resolution_wh), threshold)
        clicked = st.button("Run", type="primary", disabled=bool(problem), width="stretch", key="run")

    if clicked:
        body = build_infer_request(image_bytes=picture.data, box_xywh=box, threshold=threshold, placement=placement)
        call = run_inference(endpoint, body, model, transport == "url", picture)
        st.session_state.last_run = {
            "picture": picture_id,
            "call": call,
            "request": call.request_json,
            "box": box,
            "model": model,
            "route": endpoint.client.infer_path(model),
            "classes": endpoint.classes(model),
        }
    run = st.session_state.get("last_run")
    if run is not None and run["picture"] == picture_id:
        show_results(endpoint, picture, run)


# -- Classes ---------------------------------------------------------------------------------


def classes_page(endpoint: Endpoint) -> None:
    if not endpoint.is_ours:
        st.info("Class mapping needs this project's server (GET /models, PUT /config).")
        return
    st.markdown(
        "Name each model class as the V7 class it should fill, switch classes off, or raise their "
        "confidence floor. Saving writes the server's class-mapping file: `/classes` and `/infer` use it "
        "at once, in every worker."
    )
    if "classes_saved" in st.session_state:
        st.success(st.session_state.pop("classes_saved"))
    version = st.session_state.setdefault("classes_version", 0)
    names = endpoint.model_names()
    default_models = st.multiselect(
        "Models behind the default endpoint (/infer, /classes)",
        names,
        default=endpoint.models.get("default_models", []),
        key=f"default_models_{version}",
    )
    table = pd.DataFrame(class_mapping.rows_from_models(endpoint.models), columns=list(class_mapping.COLUMNS))
    table["threshold"] = pd.to_numeric(table["threshold"], errors="coerce")  # None -> an empty cell
    edited = st.data_editor(
        table,
        height=35 * (len(table) + 1) + 3,
        placeholder="–",
        key=f"class_editor_{version}",
        hide_index=True,
        width="stretch",
        disabled=[c for c in class_mapping.COLUMNS if c not in class_mapping.EDITABLE_COLUMNS],
        column_config={
            "model": st.column_config.TextColumn("Model"),
            "model_class": st.column_config.TextColumn("Model class"),
            "v7_name": st.column_config.TextColumn(
                "V7 class name", required=True, help="The class name V7 gets in /classes and in results"
            ),
            "type": st.column_config.TextColumn("Type"),
            "enabled": st.column_config.CheckboxColumn("Enabled"),
            "threshold": st.column_config.NumberColumn(
                "Threshold",
                min_value=0.0,
                max_value=1.0,
                step=0.05,
                help="Confidence floor for this class (empty: none)",
            ),
        },
    )
    rows = edited.to_dict("records")
    problems = class_mapping.validate_rows(rows, default_models, endpoint.models)
    for problem in problems:
        st.error(problem)
    if st.button("Save the class mapping", type="primary", disabled=bool(problems), key="save_classes"):
        call = endpoint.client.save_config(class_mapping.mapping_from_rows(rows, default_models))
        if call.ok:
            st.session_state.classes_saved = "Saved. /classes now answers as below."
            st.session_state.classes_version = version + 1
            st.rerun()
        st.error(f"The server refused the mapping: {call.error}")
    st.markdown("**GET /classes** (the default endpoint), as V7 reads it:")
    try:
        st.code(one_per_line(endpoint.client.classes()), language="json")
    except EndpointError as exc:
        st.error(str(exc))


# -- Register --------------------------------------------------------------------------------


def register_page(endpoint: Endpoint) -> None:
    left, right = st.columns(2, gap="large")
    with left:
        public = st.text_input(
            "Public base URL of this API",
            value=endpoint.client.base_url,
            key="public_url",
            help="Your tunnel's or reverse proxy's address, forwarding to this API.",
        )
        options = [DEFAULT_ENDPOINT, *endpoint.model_names()]
        choice = st.selectbox(
            "Endpoint to register", options, key="register_model", format_func=lambda n: model_label(endpoint, n)
        )
        model = None if choice == DEFAULT_ENDPOINT else choice
        url = register.infer_url(public, model)
        st.markdown("**1. URL to enter in V7** (Models → Register External Model):")
        st.code(url, language=None)
        st.caption(
            f"Registered through V7's REST API, give the base URL instead: V7 then calls "
            f"`{register.infer_url('', model)}` and `{register.classes_url('', model)}` under it."
        )
        problem = register.reachability_problem(url)
        if problem:
            st.warning(f"{problem}. {register.TUNNEL_HELP}")
        else:
            st.caption(register.TUNNEL_HELP)
        method, lines = register.auth_summary((endpoint.health or {}).get("auth"))
        st.markdown(f"**2. Authentication**: `{method}`")
        for line in lines:
            (st.warning if method == "none" else st.markdown)(line)
        st.markdown(
            "**3. A call like V7's**, to try from a shell (credentials from `$BYOM_BASIC_AUTH` / `$BYOM_AUTH_SECRET`):"
        )
        auth = (endpoint.health or {}).get("auth") or {}
        st.code(
            register.curl_command(url, basic_auth=bool(auth.get("basic")), auth_header=auth.get("header")),
            language="bash",
            wrap_lines=True,
        )
    with right:
        endpoint_classes = endpoint.classes(model)
        st.markdown("**4. Output classes** to enter (name and annotation type), as `/classes` lists them:")
        st.dataframe(
            pd.DataFrame(register.classes_for_form(endpoint_classes), columns=["name", "type"]),
            hide_index=True,
            width="stretch",
        )
        for skeleton in register.skeleton_specs(endpoint_classes):
            with st.expander(
                f"Skeleton `{skeleton['name']}`: {len(skeleton['nodes'])} nodes, {len(skeleton['edges'])} edges"
            ):
                st.caption("Create this skeleton class in V7 with exactly these node names:")
                st.code("\n".join(skeleton["nodes"]), language=None)
                st.caption("Edges (node pairs):")
                st.code("\n".join(f"{a} - {b}" for a, b in skeleton["edges"]) or "none", language=None)
    st.divider()
    self_check_section(endpoint, model)


def self_check_section(endpoint: Endpoint, model: str | None) -> None:
    st.markdown(
        "**5. Self-check**: sends V7-style requests (base64 and URL pictures, boxes, broken requests) to "
        "the endpoint and judges each rule of V7's contract. It uses the picture, box and threshold of "
        "the Try tab."
    )
    if st.button("Run the self-check", key="run_selfcheck"):
        picture, box, threshold = st.session_state.get("selfcheck_input") or (None, None, 0.5)
        if picture is None:
            picture = cached_picture(cached_sample("astronaut"), "astronaut.jpg")
            box = boxes.whole_image_xywh(picture.resolution_wh)
        skeleton_nodes = {c.name: c.nodes for c in endpoint.classes(model) if c.type == "skeleton"}
        with st.status("Running the self-check…", expanded=False) as status:
            started = time.perf_counter()
            checks = selfcheck.run_self_check(
                endpoint.client,
                picture_bytes=picture.data,
                resolution_wh=picture.resolution_wh,
                box_xywh=box,
                threshold=threshold,
                model=model,
                skeleton_nodes=skeleton_nodes,
                progress=status.write,
            )
            status.update(label=f"Self-check done in {time.perf_counter() - started:.1f} s", state="complete")
        st.session_state.selfcheck_result = (model, checks)
    stored = st.session_state.get("selfcheck_result")
    if stored is None or stored[0] != model:
        return
    checks = stored[1]
    counts = selfcheck.summary(checks)
    message = f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    (st.error if counts["failed"] else st.success)(f"Self-check of {endpoint.client.infer_path(model)}: {message}")
    table = pd.DataFrame([{"result": c.outcome, "rule": c.rule, "detail": c.detail} for c in checks])
    st.table(
        table.style.map(
            lambda outcome: f"color: {OUTCOME_COLORS.get(outcome, 'inherit')}; font-weight: 600", subset=["result"]
        ),
        hide_index=True,
    )


# -- Requests --------------------------------------------------------------------------------


def requests_page(endpoint: Endpoint) -> None:
    if endpoint.health is not None and not endpoint.health.get("request_log", False):
        st.info("The requests log is off: the server was started with --no-request-log.")
        return
    st.markdown(
        "The last requests the endpoint received, from V7 or anyone, newest first. Base64 pictures are "
        "shown by size and presigned URLs without their query (the signature); auth headers are never kept."
    )
    top = st.columns([2, 1, 1, 4], vertical_alignment="bottom")
    limit = top[0].number_input("How many", min_value=1, max_value=1000, value=50, step=10, key="requests_limit")
    top[1].button("Refresh", key="refresh_requests", width="stretch")
    if top[2].button("Clear", key="clear_requests", width="stretch"):
        call = endpoint.client.clear_requests()
        if not call.ok:
            st.error(call.error)
    call = endpoint.client.recent_requests(int(limit))
    if not call.ok:
        st.error(f"The requests log could not be read: {call.error}")
        return
    entries = call.body.get("requests", [])
    if not entries:
        st.info("No requests yet. Run something on the Try tab, or let V7 call the endpoint.")
        return
    st.dataframe(
        pd.DataFrame(requests_view.request_rows(entries)),
        hide_index=True,
        width="stretch",
        column_config={"latency_ms": st.column_config.NumberColumn("latency (ms)", format="%.0f")},
    )
    by_id = {e["id"]: e for e in entries}
    chosen = st.selectbox(  # no key: new entries reset the choice to the newest
        "Show a request",
        list(by_id),
        format_func=lambda i: f"#{i} {by_id[i]['route']} → {by_id[i]['status_code']}",
    )
    entry = by_id[chosen]
    left, right = st.columns(2)
    with left:
        st.markdown("**Request** (redacted)")
        if entry.get("request") is None:
            st.caption("No JSON body: the request's body was empty or not valid JSON.")
        else:
            st.json(entry["request"], expanded=3)
    with right:
        st.markdown(f"**Response** HTTP {entry.get('status_code')} in {entry.get('latency_ms', 0):.0f} ms")
        with st.container(height=JSON_BOX_HEIGHT_PX, border=True):
            st.json(entry.get("response"), expanded=3)


# -- the page --------------------------------------------------------------------------------


def connect() -> Endpoint:
    client = get_client(API_URL, Credentials.from_env())
    health_call = client.call("GET", "/health")
    if health_call.status_code is None or (health_call.status_code >= 500 and not isinstance(health_call.body, dict)):
        st.error(f"The endpoint is not answering: {health_call.error}")
        st.button("Try again", key="retry_connect")
        st.stop()
    health = health_call.body if health_call.ok and isinstance(health_call.body, dict) else None
    models_call = client.call("GET", "/models")
    models = models_call.body if models_call.ok and isinstance(models_call.body, dict) else None
    if models_call.status_code == 401:
        st.error(f"The endpoint refused the UI: {models_call.error}")
        st.stop()
    return Endpoint(client, health, models)


def main() -> None:
    st.set_page_config(page_title="BYOM playground", layout="wide")
    st.title("BYOM playground")
    st.caption(
        "Try, map and register models for V7 Darwin's Bring Your Own Model. Every call goes over HTTP to "
        "the endpoint, exactly as V7 makes it."
    )
    endpoint = connect()
    sidebar(endpoint)
    try_tab, classes_tab, register_tab, requests_tab = st.tabs(["Try", "Classes", "Register", "Requests"])
    with try_tab:
        try_page(endpoint)
    with classes_tab:
        classes_page(endpoint)
    with register_tab:
        register_page(endpoint)
    with requests_tab:
        requests_page(endpoint)


main()

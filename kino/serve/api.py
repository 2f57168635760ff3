"""The routes of OpenAI's Videos API, and kino's other modes under the same conventions.

    POST   /v1/videos                      text (or image, with input_reference) to video
    GET    /v1/videos                      list: after, limit, order
    GET    /v1/videos/{id}                 the video object (status, progress, ...)
    DELETE /v1/videos/{id}
    GET    /v1/videos/{id}/content         ?variant=video|thumbnail|spritesheet
    POST   /v1/videos/{id}/remix           same mode, inputs, seed, size and length; new prompt
    POST   /v1/videos/extensions           continue a video (by id, or uploaded)
    POST   /v1/videos/edits                SDEdit a video by prompt
    kino:
    POST   /v1/videos/storyboards          several shots in one video
    POST   /v1/videos/loops                a seamless loop (new, or of a video)
    POST   /v1/videos/interpolations       frames between keyframe images
    POST   /v1/videos/connections          a transition from one video into another
    GET    /v1/videos/{id}/provenance      the C2PA verification of a finished video
    GET    /v1/kino/options                sizes, lengths and limits of this server

A POST checks everything it can before queuing (fields, sizes, uploads by decoding, the safety policy
on the prompt), so a bad request gets a 400 at once instead of a failed job later.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from kino.errors import KinoError, PolicyError
from kino.serve.errors import ApiError, bad, from_kino, not_found
from kino.serve.files import VARIANTS
from kino.serve.jobs import Job, QueueFull, valid_id
from kino.serve.schemas import Options, Provenance, Video, VideoDeleted, VideoList, request_body
from kino.serve.security import owner_of

router = APIRouter(prefix="/v1")


def service(request: Request):
    return request.app.state.service


# -- the video object ------------------------------------------------------------------------------------


def to_video(job: Job) -> dict:
    error = {"code": job.error_code, "message": job.error_message} if job.status == "failed" else None
    return {"id": job.id, "object": "video", "model": job.model, "status": job.status, "progress": job.progress,
            "created_at": job.created_at, "completed_at": job.completed_at, "expires_at": job.expires_at,
            "size": job.size, "seconds": job.seconds, "prompt": job.prompt,
            "remixed_from_video_id": job.remixed_from_video_id, "error": error, "mode": job.kind}


# -- request bodies: JSON or multipart, one parser ------------------------------------------------------


async def read_body(request: Request) -> dict[str, Any]:
    """The body as a dict. Multipart keys `a[b]`, `a[0][b]` and `a[]` nest as the OpenAI client writes them."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or not ctype:
        raw = await request.body()
        if not raw:
            return {}
        import json

        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise bad("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise bad("the body must be a JSON object")
        return data
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=16, max_fields=256)
        except ApiError:
            raise
        except Exception as e:  # malformed multipart
            raise bad(f"the form could not be read ({type(e).__name__})") from None
        out: dict[str, Any] = {}
        for key, value in form.multi_items():
            _put(out, key, value)
        return out
    raise ApiError(415, f"content type {ctype!r} is not supported; send application/json or multipart/form-data",
                   code="unsupported_media_type")


def _put(out: dict, key: str, value) -> None:
    parts = key.replace("]", "").split("[")
    node: Any = out
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) > 64:
                raise bad(f"form field {key!r} is not understood", key)
            while len(node) <= int(part):
                node.append({})
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise bad(f"form field {key!r} is not understood", key)
        if last or (i == len(parts) - 2 and parts[-1] == ""):  # a[] or a repeated: a list
            if part in node:
                if not isinstance(node[part], list):
                    node[part] = [node[part]]
                node[part].append(value)
            else:
                node[part] = [value] if not last else value
            return
        nxt = parts[i + 1]
        node = node.setdefault(part, [] if nxt.isdigit() else {})


def text(body: dict, key: str, svc, required: bool = False) -> str | None:
    v = body.get(key)
    if v is None or v == "":
        if required:
            raise bad(f"{key} is required", key, "missing_required_parameter")
        return None
    if not isinstance(v, str):
        raise bad(f"{key} must be a string", key)
    if key == "prompt" and not v.strip():
        raise bad('the prompt is empty; describe the video, e.g. "a red circle moves left"', key)
    if len(v) > svc.config.max_prompt_chars:
        raise bad(f"{key} is {len(v)} characters; at most {svc.config.max_prompt_chars} are accepted", key)
    return v


def number(body: dict, key: str, kind=float, lo: float | None = None, hi: float | None = None):
    v = body.get(key)
    if v is None or v == "":
        return None
    try:
        if isinstance(v, bool) or isinstance(v, (list, dict, UploadFile)):
            raise ValueError
        x = kind(v) if kind is float else int(str(v))
    except (ValueError, OverflowError):
        raise bad(f"{key} must be a {'number' if kind is float else 'whole number'}, got {v!r}", key) from None
    if (lo is not None and not x >= lo) or (hi is not None and not x <= hi) or (kind is float and math.isnan(x)):
        raise bad(f"{key} must be in [{lo:g}, {hi:g}], got {v!r}", key)
    return x


def flag(body: dict, key: str) -> bool:
    v = body.get(key, False)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0"):
        return v.lower() in ("true", "1")
    raise bad(f"{key} must be true or false", key)


def checked(fn, param: str | None = None):
    try:
        return fn()
    except KinoError as e:
        raise from_kino(e, param) from None


# -- inputs: uploads (decoded) and references to this server's videos --------------------------------


async def upload_bytes(svc, f: UploadFile, param: str) -> bytes:
    data = await f.read(svc.config.max_upload_bytes + 1)
    if len(data) > svc.config.max_upload_bytes:
        raise ApiError(413, f"{param} is larger than {svc.config.max_upload_bytes} bytes", param=param,
                       code="upload_too_large")
    if not data:
        raise bad(f"{param} is empty", param)
    return data


async def image_input(svc, value, param: str) -> str:
    """An uploaded image or {image_url: data URL} -> stored input name."""
    if isinstance(value, UploadFile):
        data = await upload_bytes(svc, value, param)
    elif isinstance(value, dict) and isinstance(value.get("image_url"), str):
        url = value["image_url"]
        if not url.startswith("data:") or ";base64," not in url:
            raise bad(f"{param}.image_url must be a data: URL (base64); kino serve fetches nothing from the network",
                      param)
        try:
            data = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            raise bad(f"{param}.image_url is not valid base64", param) from None
        if len(data) > svc.config.max_upload_bytes:
            raise ApiError(413, f"{param} is larger than {svc.config.max_upload_bytes} bytes", param=param,
                           code="upload_too_large")
    elif isinstance(value, dict) and "file_id" in value:
        raise bad(f"{param}.file_id is not supported by kino serve; upload the image or give a data: URL", param)
    else:
        raise bad(f"{param} must be an image upload or {{\"image_url\": \"data:...\"}}", param)
    return await run_in_threadpool(checked, lambda: svc.storage.save_image(data, param), param)


async def required_video(svc, body: dict, owner: str) -> tuple[str, Job | None]:
    """The body's `video` (extensions and edits need one), as `video_input` reads it."""
    if body.get("video") in (None, ""):
        raise bad("video is required: {\"id\": \"video_...\"} or an upload", "video", "missing_required_parameter")
    return await video_input(svc, body["video"], "video", owner)


async def video_input(svc, value, param: str, owner: str) -> tuple[str, Job | None]:
    """An uploaded video or {id} of a completed video of this owner -> (stored input name, source job)."""
    if isinstance(value, UploadFile):
        data = await upload_bytes(svc, value, param)
        return await run_in_threadpool(checked, lambda: svc.storage.save_video(data, param), param), None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    jid = value.get("id") if isinstance(value, dict) else None
    if not isinstance(jid, str):
        raise bad(f"{param} must be a video upload or {{\"id\": \"video_...\"}}", param)
    job = completed(svc, jid, owner, param)
    return svc.storage.keep_source(job.id), job


def completed(svc, jid: str, owner: str, param: str = "video_id") -> Job:
    job = svc.store.get(jid, owner) if valid_id(jid) else None
    if job is None:
        raise not_found(jid)
    if job.status != "completed" or job.expired:
        state = "expired" if job.expired else job.status
        raise bad(f"video {jid} is {state}; only a completed video can be used", param, "video_not_ready")
    return job


# -- queuing ---------------------------------------------------------------------------------------------


def model_name(svc, body: dict) -> str:
    m = body.get("model")
    if m in (None, ""):
        return svc.model_name
    if m not in svc.models:
        raise bad(f"model {m!r} is not served here; valid models are {', '.join(svc.models)}", "model")
    return m


def check_prompts(svc, prompts: list[str]) -> None:
    from kino.safety import enforce_prompt

    for p in prompts:
        try:
            enforce_prompt(p, svc.safety, encoder=svc.encoder)
        except PolicyError as e:
            raise from_kino(e, "prompt") from None


async def enqueue(svc, owner: str, *, kind: str, prompt: str, model: str, seconds: str, size: str, params: dict,
                  check: list[str], remixed_from: str | None = None) -> dict:
    def work() -> Job:
        check_prompts(svc, check)
        params.setdefault("seed", secrets.randbits(31))
        params.setdefault("enhance", svc.config.enhance)
        params.setdefault("steps", svc.config.steps)
        params["inputs_all"] = _names(params.get("inputs", {}))
        try:
            return svc.store.create(owner=owner, model=model, prompt=prompt, seconds=seconds, size=size, kind=kind,
                                    params=params, queue_size=svc.config.queue_size,
                                    max_active=svc.config.max_active_per_key, remixed_from=remixed_from)
        except QueueFull as e:
            svc.storage.delete_inputs(params["inputs_all"])
            wait = max(1, math.ceil(svc.seconds_per_job() * (e.queued + 1) / len(svc.workers)))
            what = (f"the queue is full ({e.queued} jobs)" if e.scope == "server"
                    else f"this API key has {e.queued} unfinished jobs (at most {svc.config.max_active_per_key})")
            raise ApiError(429, f"{what}; retry after {wait} s", type="rate_limit_error", code="rate_limit_exceeded",
                           headers={"Retry-After": str(wait)}) from None

    try:
        job = await run_in_threadpool(work)
    except ApiError:
        svc.storage.delete_inputs(_names(params.get("inputs", {})))
        raise
    svc.wake.set()
    return to_video(job)


def _names(inputs: dict) -> list[str]:
    out = []
    for v in inputs.values():
        out.extend(v if isinstance(v, list) else [v])
    return out


def size_and_seconds(svc, body: dict, default_seconds: float | None = None) -> tuple[int, int, float]:
    size = body.get("size") or svc.default_size
    if not isinstance(size, str):
        raise bad("size must be a string such as 64x64", "size")
    w, h = checked(lambda: svc.config.resolve_size(size), "size")
    raw = body.get("seconds")
    seconds = default_seconds if raw in (None, "") else checked(lambda: svc.config.resolve_seconds(raw), "seconds")
    return w, h, seconds if seconds is not None else svc.default_seconds


# -- routes: OpenAI's Videos API ---------------------------------------------------------------------------


@router.post("/videos", response_model=Video, openapi_extra=request_body("create"))
async def create_video(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await read_body(request)
    prompt = text(body, "prompt", svc, required=True)
    model = model_name(svc, body)
    w, h, seconds = size_and_seconds(svc, body)
    params: dict[str, Any] = {"mode": "text", "prompt": prompt, "seconds": seconds, "width": w, "height": h}
    seed = number(body, "seed", int, 0, 2**31 - 1)
    if seed is not None:
        params["seed"] = seed
    ref = body.get("input_reference")
    kind = "text"
    if ref not in (None, ""):
        params["inputs"] = {"from_image": await image_input(svc, ref, "input_reference")}
        params["mode"] = kind = "image-to-video"
    return await enqueue(svc, owner, kind=kind, prompt=prompt, model=model, seconds=f"{seconds:g}", size=f"{w}x{h}",
                         params=params, check=[prompt])


@router.get("/videos", response_model=VideoList)
def list_videos(request: Request, owner: str = Depends(owner_of), after: str | None = None,
                limit: int = Query(20, ge=1, le=100), order: str = Query("desc", pattern="^(asc|desc)$")):
    svc = service(request)
    try:
        jobs, more = svc.store.list(owner, after if after else None, limit, order)
    except KeyError:
        raise not_found(after) from None
    data = [to_video(j) for j in jobs]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more}


@router.get("/videos/{video_id}", response_model=Video)
def retrieve_video(video_id: str, request: Request, owner: str = Depends(owner_of)):
    job = service(request).store.get(video_id, owner) if valid_id(video_id) else None
    if job is None:
        raise not_found(video_id)
    return to_video(job)


@router.delete("/videos/{video_id}", response_model=VideoDeleted)
def delete_video(video_id: str, request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    job = svc.store.delete(video_id, owner) if valid_id(video_id) else None
    if job is None:
        raise not_found(video_id)
    svc.storage.delete_assets(job.id)
    if job.status in ("queued", "completed"):  # a running job's worker deletes them when it stops
        svc.storage.delete_inputs(job.params.get("inputs_all", []))
    return {"id": job.id, "object": "video.deleted", "deleted": True}


@router.get("/videos/{video_id}/content", response_class=FileResponse,
            responses={200: {"content": {"video/mp4": {}, "image/jpeg": {}}}})
def download_content(video_id: str, request: Request, owner: str = Depends(owner_of),
                     variant: str = Query("video", pattern="^(video|thumbnail|spritesheet)$")):
    svc = service(request)
    job = completed(svc, video_id, owner)
    path = svc.storage.asset(job.id, variant)
    if not path.is_file():
        raise not_found(video_id)
    ext = ".mp4" if variant == "video" else f".{variant}.jpg"
    return FileResponse(path, media_type=VARIANTS[variant][1], filename=f"{job.id}{ext}")


@router.post("/videos/{video_id}/remix", response_model=Video, openapi_extra=request_body("remix"))
async def remix_video(video_id: str, request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await read_body(request)
    prompt = text(body, "prompt", svc, required=True)
    src = completed(svc, video_id, owner)
    p = src.params
    w, h = (p["width"], p["height"]) if "width" in p else map(int, src.size.split("x"))
    seconds = float(p.get("seconds") or float(src.seconds))
    if src.kind == "storyboard" or "mode" not in p:  # one new prompt for several shots: a text-to-video remix
        params = {"mode": "text", "prompt": prompt, "seconds": seconds, "width": w, "height": h,
                  "seed": p.get("seed")}
        return await enqueue(svc, owner, kind="text", prompt=prompt, model=src.model, seconds=f"{seconds:g}",
                             size=f"{w}x{h}", params=params, check=[prompt], remixed_from=src.id)
    # the same mode, inputs (an image-to-video's image, an extension's video, ...), seed and settings
    params = {k: v for k, v in p.items() if k not in ("inputs_all", "prompt")} | {"prompt": prompt}
    try:
        params["inputs"] = await run_in_threadpool(_copied_inputs, svc, p.get("inputs", {}))
    except OSError:
        raise ApiError(409, f"the inputs of video {src.id} are no longer stored; it cannot be remixed",
                       code="inputs_gone") from None
    return await enqueue(svc, owner, kind=src.kind, prompt=prompt, model=src.model, seconds=src.seconds,
                         size=src.size, params=params, check=[prompt], remixed_from=src.id)


def _copied_inputs(svc, inputs: dict) -> dict:
    """Fresh copies of a job's stored inputs (names or lists of names), for a remix of it."""
    copy = svc.storage.copy_input
    return {k: [copy(n) for n in v] if isinstance(v, list) else copy(v) for k, v in inputs.items()}


@router.post("/videos/extensions", response_model=Video, openapi_extra=request_body("extend"))
async def extend_video(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await read_body(request)
    prompt = text(body, "prompt", svc, required=True)
    if body.get("seconds") in (None, ""):
        raise bad("seconds (the length of the new part) is required", "seconds", "missing_required_parameter")
    w, h, seconds = size_and_seconds(svc, body)
    name, src = await required_video(svc, body, owner)
    if src is not None and body.get("size") in (None, ""):
        w, h = map(int, src.size.split("x"))
    before = float(src.seconds) if src is not None else await run_in_threadpool(_duration, svc, name)
    params = {"mode": "extend", "prompt": prompt, "seconds": seconds, "width": w, "height": h,
              "backward": flag(body, "backward"), "inputs": {"video": name}}
    return await enqueue(svc, owner, kind="extend", prompt=prompt, model=model_name(svc, body),
                         seconds=f"{before + seconds:g}", size=f"{w}x{h}", params=params, check=[prompt])


@router.post("/videos/edits", response_model=Video, openapi_extra=request_body("edit"))
async def edit_video(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await read_body(request)
    prompt = text(body, "prompt", svc, required=True)
    strength = number(body, "strength", float, 0.0, 1.0)
    name, src = await required_video(svc, body, owner)
    w, h = map(int, src.size.split("x")) if src is not None else svc.config.resolve_size(svc.default_size)
    frames = await run_in_threadpool(_frames, svc, name)
    if frames > svc.max_frames:
        svc.storage.delete_inputs([name])
        raise bad(f"video has {frames} frames; edits work on videos of up to {svc.max_frames} frames "
                  f"({svc.max_frames / svc.fps:g} s at {svc.fps:g} fps)", "video")
    params = {"mode": "edit", "prompt": prompt, "seconds": frames / svc.fps, "width": w, "height": h,
              "strength": svc.config.edit_strength if strength is None else strength, "inputs": {"video": name}}
    return await enqueue(svc, owner, kind="edit", prompt=prompt, model=model_name(svc, body),
                         seconds=f"{frames / svc.fps:g}", size=f"{w}x{h}", params=params, check=[prompt],
                         remixed_from=src.id if src is not None else None)


def _duration(svc, name: str) -> float:
    return _frames(svc, name) / svc.fps


def _frames(svc, name: str) -> int:
    from kino.io import probe

    try:
        info = probe(svc.storage.input_path(name))
    except KinoError:
        return 0
    return max(1, round(info.duration * svc.fps)) if info.duration else max(1, info.num_frames)


# -- routes: kino's other modes -----------------------------------------------------------------------------


@router.post("/videos/storyboards", response_model=Video, openapi_extra=request_body("storyboard"))
async def create_storyboard(request: Request, owner: str = Depends(owner_of)):
    from kino.storyboard import load_storyboard

    svc = service(request)
    body = await read_body(request)
    shots = body.get("shots")
    if not isinstance(shots, list) or not shots:
        raise bad("shots is required: a list of {prompt, seconds, transition}", "shots", "missing_required_parameter")
    if len(shots) > svc.config.max_shots:
        raise bad(f"{len(shots)} shots; at most {svc.config.max_shots} are accepted", "shots")
    w, h, _ = size_and_seconds(svc, body)
    seed = number(body, "seed", int, 0, 2**31 - 1)
    subject = text(body, "subject", svc)
    board_dict = {"shots": shots, "size": f"{w}x{h}", "fps": svc.fps, **({"subject": subject} if subject else {})}
    board = checked(lambda: load_storyboard(board_dict), "shots")
    total = sum(s.seconds for s in board.shots)
    if total > svc.config.max_seconds:
        raise bad(f"the shots last {total:g} s; at most {svc.config.max_seconds:g} s in all", "shots")
    prompts = [board.prompt_of(s) for s in board.shots]
    for p in prompts:
        if len(p) > svc.config.max_prompt_chars:
            raise bad(f"a shot's prompt is {len(p)} characters; at most {svc.config.max_prompt_chars}", "shots")
    board_dict["shots"] = [{"prompt": s.prompt, "seconds": s.seconds, "transition": str(s.transition)}
                           for s in board.shots]
    params: dict[str, Any] = {"mode": "storyboard", "storyboard": board_dict, "width": w, "height": h,
                              "seconds": total}
    if seed is not None:
        params["seed"] = seed
    return await enqueue(svc, owner, kind="storyboard", prompt=" | ".join(prompts), model=model_name(svc, body),
                         seconds=f"{total:g}", size=f"{w}x{h}", params=params, check=prompts)


@router.post("/videos/loops", response_model=Video, openapi_extra=request_body("loop"))
async def create_loop(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await read_body(request)
    prompt = text(body, "prompt", svc, required=True)
    w, h, seconds = size_and_seconds(svc, body)
    params: dict[str, Any] = {"mode": "loop", "prompt": prompt, "seconds": seconds, "width": w, "height": h,
                              "phases": 2}
    if body.get("video") not in (None, ""):
        name, src = await video_input(svc, body["video"], "video", owner)
        params.update(inputs={"video": name}, phases=1)
        if src is not None and body.get("size") in (None, ""):
            params["width"], params["height"] = w, h = map(int, src.size.split("x"))
    return await enqueue(svc, owner, kind="loop", prompt=prompt, model=model_name(svc, body), seconds=f"{seconds:g}",
                         size=f"{w}x{h}", params=params, check=[prompt])


@router.post("/videos/interpolations", response_model=Video, openapi_extra=request_body("interpolate"))
async def create_interpolation(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await read_body(request)
    prompt = text(body, "prompt", svc, required=True)
    w, h, seconds = size_and_seconds(svc, body)
    keys = body.get("keyframes")
    if not isinstance(keys, list) or not 2 <= len(keys) <= 16:
        raise bad("keyframes must be a list of 2 to 16 images", "keyframes")
    times = body.get("key_times")
    if times is not None:
        if not isinstance(times, list) or len(times) != len(keys):
            raise bad("key_times must be a list with one time (seconds) per keyframe", "key_times")
        times = [number({"t": t}, "t", float, 0.0, svc.config.max_seconds) for t in times]
    names = [await image_input(svc, k, f"keyframes[{i}]") for i, k in enumerate(keys)]
    params = {"mode": "interpolate", "prompt": prompt, "seconds": seconds if body.get("seconds") else None,
              "width": w, "height": h, "key_times": times, "inputs": {"keyframes": names}}
    return await enqueue(svc, owner, kind="interpolate", prompt=prompt, model=model_name(svc, body),
                         seconds=f"{seconds:g}", size=f"{w}x{h}", params=params, check=[prompt])


@router.post("/videos/connections", response_model=Video, openapi_extra=request_body("connect"))
async def create_connection(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await read_body(request)
    prompt = text(body, "prompt", svc, required=True)
    w, h, seconds = size_and_seconds(svc, body, default_seconds=1.0)
    videos = body.get("videos")
    if not isinstance(videos, list) or len(videos) != 2:
        raise bad("videos must be a list of two videos ({\"id\": ...} or uploads)", "videos")
    names, total = [], seconds
    for i, v in enumerate(videos):
        name, src = await video_input(svc, v, f"videos[{i}]", owner)
        names.append(name)
        total += float(src.seconds) if src is not None else await run_in_threadpool(_duration, svc, name)
    params = {"mode": "connect", "prompt": prompt, "seconds": seconds, "width": w, "height": h,
              "inputs": {"videos": names}}
    return await enqueue(svc, owner, kind="connect", prompt=prompt, model=model_name(svc, body),
                         seconds=f"{total:g}", size=f"{w}x{h}", params=params, check=[prompt])


@router.get("/videos/{video_id}/provenance", response_model=Provenance)
def provenance(video_id: str, request: Request, owner: str = Depends(owner_of)):
    from kino.safety.verify import verify_file

    svc = service(request)
    job = completed(svc, video_id, owner)
    try:
        s = verify_file(svc.storage.asset(job.id), svc.safety).summary()
    except KinoError as e:
        raise not_found(video_id) from e
    return {"id": job.id, **{k: s.get(k) for k in Provenance.model_fields if k != "id"}}


@router.get("/kino/options", response_model=Options)
def options(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    c = svc.config
    return {"model": svc.model_name, "models": svc.models,
            "sizes": {a.value: [f"{w}x{h}" for w, h in v] for a, v in c.by_aspect().items()},
            "size_aliases": {k: "{}x{}".format(*c.resolve_size(k)) for k in ("1280x720", "720x1280", "1792x1024",
                                                                             "1024x1792")},
            "default_size": svc.default_size, "default_seconds": f"{svc.default_seconds:g}",
            "max_seconds": c.max_seconds, "fps": svc.fps, "max_prompt_chars": c.max_prompt_chars,
            "max_shots": c.max_shots, "auth": not c.no_auth}


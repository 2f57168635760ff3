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
    GET    /v1/kino/options                sizes, lengths and limits of this server; each served model's modes

Every POST checks, cheapest first, before queuing: the body against its model (schemas.py), the rate
limits and storage quotas, the safety policy on the prompt, then the inputs from their headers
(intake.py), and finally the generation request itself; a bad request gets a 4xx at once instead of a
failed job later, and leaves no upload behind. The job stores the request (GenerationRequest's fields)
that the worker runs.
"""

from __future__ import annotations

import math
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from kino.errors import KinoError, PolicyError
from kino.serve import schemas as S
from kino.serve.config import SIZE_ALIASES
from kino.serve.errors import ApiError, bad, from_kino, not_found
from kino.serve.files import VARIANTS
from kino.serve.intake import Inputs, checked, completed, parse_body
from kino.serve.jobs import Job, QueueFull, valid_id
from kino.serve.security import owner_of

router = APIRouter(prefix="/v1")


def service(request: Request):
    return request.app.state.service


# -- the video object ------------------------------------------------------------------------------------


def to_video(job: Job) -> dict:
    error = {"code": job.error_code, "message": job.error_message} if job.status == "failed" else None
    seed = (job.params.get("request") or {}).get("seed")
    return {"id": job.id, "object": "video", "model": job.model, "status": job.status, "progress": job.progress,
            "created_at": job.created_at, "completed_at": job.completed_at, "expires_at": job.expires_at,
            "size": job.size, "seconds": job.seconds, "prompt": job.prompt,
            "remixed_from_video_id": job.remixed_from_video_id, "error": error, "mode": job.kind, "seed": seed,
            "enhanced_prompt": job.enhanced_prompt}


# -- the steps every POST takes ---------------------------------------------------------------------------


def model_name(svc, body: S.Body) -> str:
    m = getattr(body, "model", None)
    if m is None:
        return svc.model_name
    if m not in svc.models:
        raise bad(f"model {m!r} is not served here; valid models are {', '.join(svc.models)}", "model")
    return m


def size_of(sm, body: S.Body, default: tuple[int, int] | None = None) -> tuple[int, int]:
    """The body's size among the chosen model's sizes (sm: kino.serve.served.ServedModel), else `default`,
    else the model's default size."""
    size = getattr(body, "size", None)
    if size is None:
        return default or sm.offer.resolve_size(sm.default_size)
    return checked(lambda: sm.offer.resolve_size(size), "size")


def admit(svc, owner: str) -> None:
    """Rate limits and storage quotas, before any expensive work (the queue re-checks when the job is made)."""
    queued, mine = svc.store.pressure(owner)
    if queued >= svc.config.queue_size:
        raise _busy(svc, QueueFull(queued, "server"))
    if mine >= svc.config.max_active_per_key:
        raise _busy(svc, QueueFull(mine, "key"))
    used, total = svc.store.usage(owner)
    c = svc.config
    if used >= c.quota_bytes_per_key or total >= c.quota_bytes_total:
        who = "this API key" if used >= c.quota_bytes_per_key else "the server"
        limit = c.quota_bytes_per_key if who == "this API key" else c.quota_bytes_total
        raise ApiError(429, f"{who} keeps {max(used, total) / 2**20:.0f} MiB of videos and inputs (at most "
                       f"{limit / 2**20:.0f} MiB); delete videos to make room", type="insufficient_quota",
                       code="insufficient_quota")


def _busy(svc, e: QueueFull) -> ApiError:
    wait = max(1, math.ceil(svc.seconds_per_job() * (e.queued + 1) / len(svc.workers)))
    what = (f"the queue is full ({e.queued} jobs)" if e.scope == "server"
            else f"this API key has {e.queued} unfinished jobs (at most {svc.config.max_active_per_key})")
    return ApiError(429, f"{what}; retry after {wait} s", type="rate_limit_error", code="rate_limit_exceeded",
                    headers={"Retry-After": str(wait)})


async def judge(svc, prompts: list[str], joined: bool = False) -> None:
    """The safety policy on each prompt (and on their joined text: a term split over shots is still seen)."""
    from kino.safety import enforce_prompt

    texts = [p for p in prompts if p]
    if joined and len(texts) > 1:
        texts.append(" ".join(texts))

    def work() -> None:
        for p in texts:
            try:
                enforce_prompt(p, svc.safety, encoder=svc.encoder)
            except PolicyError as e:
                raise from_kino(e, "prompt") from None

    await run_in_threadpool(work)


def generation_request(svc, prompt: str | None, **fields) -> dict:
    """The stored request: GenerationRequest's fields (JSON), checked by building it. A mode that needs no
    prompt gets the command line's default prompt, not enhanced (as `kino loop --video` does)."""
    from kino.commands.modes import DEFAULT_PROMPT
    from kino.generation import GenerationRequest

    storyboard = fields.get("mode") == "storyboard"
    req = {"prompt": prompt if storyboard else (prompt or DEFAULT_PROMPT),
           "enhance": svc.config.enhance and bool(prompt), "steps": svc.config.steps, **fields}
    if fields.get("seed") is None:
        req["seed"] = secrets.randbits(31)
    checked(lambda: GenerationRequest(**req))  # a request the worker could not build is a 400 now
    return req


async def enqueue(svc, owner: str, inputs: Inputs, *, kind: str, prompt: str | None, model: str, seconds: float,
                  size: tuple[int, int], request: dict, remixed_from: str | None = None,
                  extra: dict | None = None, served: str | None = None) -> dict:
    """Queue the job for the served model behind `model` (or `served`, a remix's source's); a mode that
    model cannot do is a 400 naming `model`, before anything is queued."""
    from kino.generation import GenerationRequest

    served = served or svc.served_name(model)
    mode = GenerationRequest(**request).mode
    checked(lambda: svc.served[served].model.check_mode(mode), "model")
    params: dict[str, Any] = {"request": request, "inputs_all": list(inputs.names),
                              "phases": 2 if kind == "loop" and not request.get("video") else 1, **(extra or {})}

    def work() -> Job:
        try:
            return svc.store.create(owner=owner, model=model, prompt=prompt, seconds=f"{seconds:g}",
                                    size="{}x{}".format(*size), kind=kind, params=params,
                                    queue_size=svc.config.queue_size, max_active=svc.config.max_active_per_key,
                                    remixed_from=remixed_from, nbytes=svc.storage.size_of(inputs.names),
                                    served=served)
        except QueueFull as e:
            raise _busy(svc, e) from None

    job = await run_in_threadpool(work)
    svc.wake.set()
    return to_video(job)


def _seconds(sm, body_seconds: float | None) -> float:
    return body_seconds if body_seconds is not None else sm.default_seconds


def _fits(svc, total: float, what: str) -> None:
    if total > svc.config.max_seconds + 1e-9:
        raise bad(f"{what} would last {total:g} s; at most {svc.config.max_seconds:g} s in all (--max-seconds)",
                  "seconds")


# -- routes: OpenAI's Videos API ---------------------------------------------------------------------------


@router.post("/videos", response_model=S.Video, openapi_extra=S.body_schema(S.CreateVideo))
async def create_video(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await parse_body(request, S.CreateVideo)
    model = model_name(svc, body)
    sm = svc.serving(model)  # the chosen model: its sizes, default size and length
    (w, h), seconds = size_of(sm, body), _seconds(sm, body.seconds)
    admit(svc, owner)
    await judge(svc, [body.prompt])
    async with Inputs(svc) as inputs:
        fields: dict[str, Any] = {"mode": "text", "seconds": seconds, "width": w, "height": h, "seed": body.seed}
        if body.input_reference is not None:
            fields |= {"mode": "image-to-video", "from_image": await inputs.image(body.input_reference,
                                                                                  "input_reference")}
        req = generation_request(svc, body.prompt, **fields)
        return await enqueue(svc, owner, inputs, kind=fields["mode"], prompt=body.prompt, model=model,
                             seconds=seconds, size=(w, h), request=req)


@router.get("/videos", response_model=S.VideoList)
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


@router.get("/videos/{video_id}", response_model=S.Video)
def retrieve_video(video_id: str, request: Request, owner: str = Depends(owner_of)):
    job = service(request).store.get(video_id, owner) if valid_id(video_id) else None
    if job is None:
        raise not_found(video_id)
    return to_video(job)


@router.delete("/videos/{video_id}", response_model=S.VideoDeleted)
def delete_video(video_id: str, request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    job = svc.store.delete(video_id, owner) if valid_id(video_id) else None
    if job is None:
        raise not_found(video_id)
    svc.storage.delete_assets(job.id)
    if job.status in ("queued", "completed", "failed"):  # a running job's worker deletes them when it stops
        svc.storage.delete_inputs(job.params.get("inputs_all", []))
    return {"id": job.id, "object": "video.deleted", "deleted": True}


@router.get("/videos/{video_id}/content", response_class=FileResponse,
            responses={200: {"content": {"video/mp4": {}, "image/jpeg": {}}}})
def download_content(video_id: str, request: Request, owner: str = Depends(owner_of),
                     variant: str = Query("video", pattern="^(video|thumbnail|spritesheet)$")):
    svc = service(request)
    job = completed(svc, video_id, owner)  # an expired video is refused even before the cleanup pass
    path = svc.storage.asset(job.id, variant)
    if not path.is_file():
        raise not_found(video_id)
    ext = ".mp4" if variant == "video" else f".{variant}.jpg"
    return FileResponse(path, media_type=VARIANTS[variant][1], filename=f"{job.id}{ext}")


@router.post("/videos/{video_id}/remix", response_model=S.Video, openapi_extra=S.body_schema(S.RemixVideo))
async def remix_video(video_id: str, request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await parse_body(request, S.RemixVideo)
    src = completed(svc, video_id, owner)
    admit(svc, owner)
    await judge(svc, [body.prompt])
    old = src.params.get("request")
    if old is None:
        raise ApiError(409, f"video {src.id} was made by an older kino serve; it cannot be remixed", code="inputs_gone")
    async with Inputs(svc) as inputs:
        if src.kind == "storyboard":  # one new prompt for several shots: a text-to-video remix
            req = generation_request(svc, body.prompt, mode="text", seconds=float(src.seconds), seed=old["seed"],
                                     width=old["width"], height=old["height"])
            kind = "text"
        else:  # the same mode, inputs (an image-to-video's image, an extension's video, ...), seed and settings
            try:
                moved = await run_in_threadpool(_copied_inputs, svc, inputs, src.params.get("inputs_all", []))
            except OSError:
                raise ApiError(409, f"the inputs of video {src.id} are no longer stored; it cannot be remixed",
                               code="inputs_gone") from None
            req = {**_repath(old, moved), "prompt": body.prompt, "enhance": svc.config.enhance}
            kind = src.kind
        return await enqueue(svc, owner, inputs, kind=kind, prompt=body.prompt, model=src.model, served=src.served if src.served in svc.served else None,
                             seconds=float(src.seconds), size=tuple(map(int, src.size.split("x"))), request=req,
                             remixed_from=src.id)


def _copied_inputs(svc, inputs: Inputs, names: list[str]) -> dict[str, str]:
    """Fresh copies of a job's stored inputs, for a remix of it: {old path: new path}."""
    moved = {}
    for n in names:
        new = svc.storage.copy_input(n)
        inputs.names.append(new)
        moved[inputs.path(n)] = inputs.path(new)
    return moved


def _repath(req: dict, moved: dict[str, str]) -> dict:
    def one(v):
        return moved.get(v, v) if isinstance(v, str) else v

    return {k: [one(x) for x in v] if isinstance(v, list) else one(v) for k, v in req.items()}


@router.post("/videos/extensions", response_model=S.Video, openapi_extra=S.body_schema(S.ExtendVideo))
async def extend_video(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await parse_body(request, S.ExtendVideo)
    model = model_name(svc, body)
    sm = svc.serving(model)
    admit(svc, owner)
    await judge(svc, [body.prompt])
    async with Inputs(svc) as inputs:
        path, frames, src, own = await inputs.video(body.video, "video", owner, sm)
        w, h = size_of(sm, body, own)  # the video's own size (else the nearest the model makes)
        total = frames / sm.fps + body.seconds  # its frames at the model's rate
        _fits(svc, total, f"the video ({frames / sm.fps:g} s) with {body.seconds:g} s more")
        req = generation_request(svc, body.prompt, mode="extend", seconds=body.seconds, width=w, height=h,
                                 video=path, backward=body.backward, seed=body.seed)
        return await enqueue(svc, owner, inputs, kind="extend", prompt=body.prompt, model=model, seconds=total,
                             size=(w, h), request=req, remixed_from=src.id if src is not None else None)


@router.post("/videos/edits", response_model=S.Video, openapi_extra=S.body_schema(S.EditVideo))
async def edit_video(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await parse_body(request, S.EditVideo)
    model = model_name(svc, body)
    sm = svc.serving(model)
    admit(svc, owner)
    await judge(svc, [body.prompt])
    async with Inputs(svc) as inputs:
        path, frames, src, own = await inputs.video(body.video, "video", owner, sm)
        w, h = size_of(sm, body, own)  # the video's own size (else the nearest the model makes)
        fps, max_frames = sm.fps, sm.max_frames
        if frames > max_frames:
            raise bad(f"video has {frames} frames; edits work on videos of up to {max_frames} frames "
                      f"({max_frames / fps:g} s at {fps:g} fps)", "video")
        strength = svc.config.edit_strength if body.strength is None else body.strength
        req = generation_request(svc, body.prompt, mode="edit", seconds=frames / fps, width=w, height=h,
                                 video=path, strength=strength, seed=body.seed)
        return await enqueue(svc, owner, inputs, kind="edit", prompt=body.prompt, model=model,
                             seconds=frames / fps, size=(w, h), request=req,
                             remixed_from=src.id if src is not None else None)


# -- routes: kino's other modes -----------------------------------------------------------------------------


@router.post("/videos/storyboards", response_model=S.Video, openapi_extra=S.body_schema(S.CreateStoryboard))
async def create_storyboard(request: Request, owner: str = Depends(owner_of)):
    from kino.generation import GenerationRequest

    svc = service(request)
    body = await parse_body(request, S.CreateStoryboard)
    model = model_name(svc, body)
    (w, h) = size_of(svc.serving(model), body)
    if len(body.shots) > svc.config.max_shots:
        raise bad(f"{len(body.shots)} shots; at most {svc.config.max_shots} are accepted", "shots")
    total = sum(s.seconds for s in body.shots)
    _fits(svc, total, "the shots")
    req = generation_request(svc, "", mode="storyboard", seconds=total, width=w, height=h, seed=body.seed,
                             shots=[s.model_dump() for s in body.shots], subject=body.subject)
    req["enhance"] = svc.config.enhance
    prompts = list(checked(lambda: GenerationRequest(**req), "shots").all_prompts)
    for p in prompts:
        if len(p) > svc.config.max_prompt_chars:
            raise bad(f"a shot's prompt is {len(p)} characters; at most {svc.config.max_prompt_chars}", "shots")
    admit(svc, owner)
    await judge(svc, prompts, joined=True)
    async with Inputs(svc) as inputs:
        return await enqueue(svc, owner, inputs, kind="storyboard", prompt=" | ".join(prompts), model=model,
                             seconds=total, size=(w, h), request=req)


@router.post("/videos/loops", response_model=S.Video, openapi_extra=S.body_schema(S.LoopVideo))
async def create_loop(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await parse_body(request, S.LoopVideo)
    if body.prompt is None and body.video is None:
        raise bad("a loop needs a prompt (\"a red ball bounces\") or a video to loop", "prompt",
                  "missing_required_parameter")
    model = model_name(svc, body)
    sm = svc.serving(model)
    seconds = _seconds(sm, body.seconds)
    admit(svc, owner)
    await judge(svc, [body.prompt])
    async with Inputs(svc) as inputs:
        fields: dict[str, Any] = {"mode": "loop", "seconds": seconds, "seed": body.seed}
        w, h = size_of(sm, body)
        total = seconds
        if body.video is not None:
            path, frames, src, own = await inputs.video(body.video, "video", owner, sm)
            w, h = size_of(sm, body, own)
            total = frames / sm.fps + seconds  # the video, then the transition back to its start
            _fits(svc, total, f"the video ({frames / sm.fps:g} s) with a {seconds:g} s transition")
            fields["video"] = path
        req = generation_request(svc, body.prompt, width=w, height=h, **fields)
        return await enqueue(svc, owner, inputs, kind="loop", prompt=body.prompt, model=model, seconds=total,
                             size=(w, h), request=req)


@router.post("/videos/interpolations", response_model=S.Video, openapi_extra=S.body_schema(S.InterpolateVideo))
async def create_interpolation(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await parse_body(request, S.InterpolateVideo)
    model = model_name(svc, body)
    sm = svc.serving(model)
    (w, h) = size_of(sm, body)
    times = body.key_times
    if times is not None and len(times) != len(body.keyframes):
        raise bad(f"{len(body.keyframes)} keyframes but {len(times)} key_times; give one time (seconds) per "
                  f"keyframe", "key_times")
    length = max(body.seconds or 0.0, (times[-1] + 1 / sm.fps) if times else 0.0) or sm.max_frames / sm.fps
    _fits(svc, length, "the interpolation")
    admit(svc, owner)
    await judge(svc, [body.prompt])
    async with Inputs(svc) as inputs:
        paths = [await inputs.image(k, f"keyframes[{i}]") for i, k in enumerate(body.keyframes)]
        req = generation_request(svc, body.prompt, mode="interpolate", seconds=body.seconds, width=w, height=h,
                                 keyframes=paths, key_times=times, seed=body.seed)
        return await enqueue(svc, owner, inputs, kind="interpolate", prompt=body.prompt, model=model,
                             seconds=length, size=(w, h), request=req)


@router.post("/videos/connections", response_model=S.Video, openapi_extra=S.body_schema(S.ConnectVideos))
async def create_connection(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    body = await parse_body(request, S.ConnectVideos)
    model = model_name(svc, body)
    sm = svc.serving(model)
    seconds = body.seconds if body.seconds is not None else 1.0
    admit(svc, owner)
    await judge(svc, [body.prompt])
    async with Inputs(svc) as inputs:
        paths, total, sizes = [], seconds, []
        for i, v in enumerate(body.videos):
            path, frames, _, own = await inputs.video(v, f"videos[{i}]", owner, sm)
            paths.append(path)
            sizes.append(own)
            total += frames / sm.fps
        w, h = size_of(sm, body, sizes[0])  # by default the first video's size
        _fits(svc, total, f"the two videos with a {seconds:g} s transition")
        req = generation_request(svc, body.prompt, mode="connect", seconds=seconds, width=w, height=h,
                                 videos=paths, seed=body.seed)
        return await enqueue(svc, owner, inputs, kind="connect", prompt=body.prompt, model=model, seconds=total,
                             size=(w, h), request=req)


@router.get("/videos/{video_id}/provenance", response_model=S.Provenance)
def provenance(video_id: str, request: Request, owner: str = Depends(owner_of)):
    from kino.safety.verify import verify_file

    svc = service(request)
    job = completed(svc, video_id, owner)
    try:
        s = verify_file(svc.storage.asset(job.id), svc.safety).summary()
    except KinoError as e:
        raise not_found(video_id) from e
    return {"id": job.id, **{k: s.get(k) for k in S.Provenance.model_fields if k != "id"}}


@router.get("/models")
def list_models(request: Request, owner: str = Depends(owner_of)):
    """OpenAI's model list: the served model under each name it answers to, with kino's family, variant,
    the modes it can do (a mode it cannot is a 400 on submission), its sizes, defaults and fps."""
    svc = service(request)
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "kino",
                                        **model_info(svc.model(name)), **svc.serving(name).offered()}
                                       for name in svc.models]}


def model_info(m) -> dict:
    """A served model's family, variant, the modes it can do (kino.families.VideoModel) and the LoRAs in use
    (`kino serve --lora`: each file's name, scale and expert; the server's paths stay private)."""
    loras = [{"name": Path(r["path"]).name, "scale": r["scale"], "expert": r.get("expert", "high")}
             for r in getattr(m, "loras", None) or []]
    return {"family": str(m.family), "variant": getattr(m, "variant", ""), "modes": sorted(m.modes), "loras": loras}


@router.get("/kino/options", response_model=S.Options)
def options(request: Request, owner: str = Depends(owner_of)):
    svc = service(request)
    c, d = svc.config, svc.serving(svc.model_name)  # the top level: the default model's
    return {"model": svc.model_name, "models": svc.models,
            "sizes": {a.value: [f"{w}x{h}" for w, h in v] for a, v in d.offer.by_aspect().items()},
            "size_aliases": {k: "{}x{}".format(*d.offer.resolve_size(k)) for k in SIZE_ALIASES},
            "default_size": d.default_size, "default_seconds": f"{d.default_seconds:g}",
            "max_seconds": c.max_seconds, "fps": d.fps, "max_prompt_chars": c.max_prompt_chars,
            "max_shots": c.max_shots, "auth": not c.no_auth, "modes": sorted(d.model.modes),
            "served": {name: {**model_info(sm.model), **sm.offered()} for name, sm in svc.served.items()}}


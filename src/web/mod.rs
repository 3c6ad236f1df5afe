//! The browser API (wasm32 only). The page's Web Worker (`www/worker.js`) drives the model
//! through [`Engine`]: every pass of the two-stage network, timed stage by stage, fine-tuning
//! with the inpainting loss, and weights export/import. Everything runs on the page's
//! machine: nothing here touches the network. The segmentation passes and their pictures
//! are in `stages.rs`.
//!
//! Every GPU read is asynchronous (`into_data_async`, `Transaction::execute_async`): WebGPU
//! cannot block the browser's thread.
//!
//! Built twice for the page: the stable build (`pkg/`: WebGPU and single-threaded Flex) and,
//! with wasm atomics (`scripts/web-threads.sh`, `pkg-mt/`), a multi-threaded Flex build without
//! WebGPU whose worker first calls `initThreadPool`; Cargo.toml picks the dependencies by
//! `cfg(target_feature = "atomics")`.

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Transaction;
use image::{GrayImage, RgbImage};
use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::adapt::{AdaptOptions, Adapter, Objective, Scope, Verdict};
use crate::backend::{Backend, init_async};
use crate::imageio;
use crate::metrics::Confusion;
use crate::model::{STRIDE, Scl, trainable_params};
use crate::weights::{self, Precision};

mod pool;
mod stages;

/// Installs the panic hook (panics print their message to the console instead of
/// "unreachable").
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// `initThreadPool(n)` in the page's multi-threaded CPU build (wasm atomics): starts `n`
/// Web Workers sharing this module's memory as Flex's rayon pool. The worker awaits it once,
/// before anything runs on Flex.
#[cfg(target_feature = "atomics")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// Threads the CPU backend computes on: the size of the pool `initThreadPool` started (call it
/// after that), or 1 in the single-threaded build.
#[wasm_bindgen]
pub fn cpu_threads() -> usize {
    pool_threads()
}

#[cfg(target_feature = "atomics")]
fn pool_threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(not(target_feature = "atomics"))]
fn pool_threads() -> usize {
    1
}

fn err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Milliseconds from the worker's or page's `performance.now()`.
fn now() -> f64 {
    let perf = Reflect::get(&js_sys::global(), &"performance".into()).ok();
    perf.and_then(|p| {
        let f = Reflect::get(&p, &"now".into()).ok()?;
        let f: js_sys::Function = f.dyn_into().ok()?;
        f.call0(&p).ok()?.as_f64()
    })
    .unwrap_or_else(js_sys::Date::now)
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    Reflect::set(obj, &key.into(), &value.into()).expect("set on a plain object");
}

/// The page's working sizes: multiples of the network's stride, 32 to 1024.
fn check_size(size: u32) -> Result<(), JsError> {
    if size == 0 || !(size as usize).is_multiple_of(STRIDE) || size > 1024 {
        return Err(err(format!(
            "working size {size} must be a multiple of {STRIDE} between 32 and 1024"
        )));
    }
    Ok(())
}

/// Reads tensors from the device in one asynchronous transaction (one GPU round trip).
async fn read_all(tensors: Vec<Tensor<4>>) -> Result<Vec<Vec<f32>>, crate::Error> {
    fn failed(e: impl std::fmt::Debug) -> crate::Error {
        crate::Error::Device(format!("reading a result back failed: {e:?}"))
    }
    let tx = tensors
        .into_iter()
        .fold(Transaction::default(), |tx, t| tx.register(t));
    let data = tx.execute_async().await.map_err(failed)?;
    data.into_iter()
        .map(|d| d.try_into_vec::<f32>().map_err(failed))
        .collect()
}

async fn read(t: Tensor<4>) -> Result<Vec<f32>, crate::Error> {
    Ok(read_all(vec![t]).await?.swap_remove(0))
}

/// An RGBA picture for a 2D canvas: `{ width, height, rgba }`.
fn picture_rgb(img: &RgbImage) -> Object {
    let (w, h) = img.dimensions();
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for p in img.pixels() {
        rgba.extend_from_slice(&[p[0], p[1], p[2], 255]);
    }
    let o = Object::new();
    set(&o, "width", w);
    set(&o, "height", h);
    set(&o, "rgba", Uint8Array::from(&rgba[..]));
    o
}

fn picture_grey(img: &GrayImage) -> Object {
    picture_rgb(&image::DynamicImage::ImageLuma8(img.clone()).to_rgb8())
}

thread_local! {
    /// The page's WebGPU device: initialised once per page (worker) and shared by every
    /// engine, as wgpu requires.
    static WEBGPU: std::cell::RefCell<Option<Device>> = const { std::cell::RefCell::new(None) };
}

/// The device for `backend`, initialising WebGPU on first use.
async fn device_for(backend: Backend) -> Result<Device, JsError> {
    if backend == Backend::Flex {
        return Ok(Device::flex());
    }
    if let Some(d) = WEBGPU.with(|c| c.borrow().clone()) {
        return Ok(d);
    }
    let d = init_async(backend).await.map_err(err)?;
    WEBGPU.with(|c| *c.borrow_mut() = Some(d.clone()));
    Ok(d)
}

/// The WebGPU adapter's `requestAdapter()` result when the browser offers one (`None` when
/// `navigator.gpu` is missing or returns no adapter, as headless Chromium without
/// `--enable-unsafe-webgpu`).
pub async fn webgpu_adapter() -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok()?;
    if gpu.is_undefined() || gpu.is_null() {
        return None;
    }
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    (!adapter.is_null() && !adapter.is_undefined()).then_some(adapter)
}

/// The network, on the backend the page chose.
#[wasm_bindgen]
pub struct Engine {
    device: Device,
    backend: Backend,
    /// Inference copy (no autodiff).
    model: Scl,
    /// The adaptation in progress (the page's fine-tuning panel).
    adapter: Option<Adapter>,
    weights_name: String,
}

#[wasm_bindgen]
impl Engine {
    /// Initialises `backend` (`"webgpu"` or `"flex"`) and loads the network from Burnpack
    /// weights. Fails with a readable message when there is no WebGPU adapter or the weights
    /// are not an SCL weights file.
    pub async fn create(
        backend: String,
        weights: Vec<u8>,
        name: String,
    ) -> Result<Engine, JsError> {
        let backend = Backend::parse(&backend).map_err(err)?;
        let device = device_for(backend).await?;
        let model = weights::from_bytes(&weights, &name, &device)
            .map_err(err)?
            .valid();
        Ok(Engine {
            device,
            backend,
            model,
            adapter: None,
            weights_name: name,
        })
    }

    /// `"webgpu"` or `"flex"`.
    pub fn backend(&self) -> String {
        match self.backend {
            Backend::Flex => "flex".into(),
            Backend::Wgpu => "webgpu".into(),
        }
    }

    /// The network's configuration in words, with its parameter count.
    pub fn describe(&self) -> String {
        format!(
            "{} — {:.2} M parameters ({})",
            self.model.config.describe(),
            trainable_params(&self.model) as f64 / 1e6,
            self.weights_name
        )
    }

    /// Whether the network has the second stage (inpainting); the supervised baseline has not.
    pub fn two_stage(&self) -> bool {
        self.model.config.two_stage
    }

    /// Replaces the network with the one in a weights file (any configuration). On error the
    /// current network stays.
    pub async fn load_weights(
        &mut self,
        weights: Vec<u8>,
        name: String,
    ) -> Result<String, JsError> {
        let model = weights::from_bytes(&weights, &name, &self.device).map_err(err)?;
        self.model = model.valid();
        self.adapter = None;
        self.weights_name = name;
        Ok(self.describe())
    }

    /// Runs one warm-up pass at `size` (the network's forward and one read of its mask, on this
    /// thread; [`Engine::segment`] runs on a pool worker in the multi-threaded build) so that
    /// the first real image does not pay for shader compilation and memory allocation. Not
    /// `segment`'s staged passes: with them the single-threaded page's images ran ~10% slower
    /// with no kernel changed (the README's "Speed" says why).
    pub async fn warm_up(&self, size: u32) -> Result<f64, JsError> {
        check_size(size)?;
        let t0 = now();
        let x = Tensor::<4>::full([1, 3, size as usize, size as usize], 0.5, &self.device);
        let (_, fine) = self.model.predict_mask(x).map_err(err)?;
        read(fine).await?;
        Ok(now() - t0)
    }

    /// Segments one image file (PNG, JPEG, BMP, TIFF, GIF, WebP; any bit depth, grey or RGBA)
    /// at `size x size` (a multiple of 32; SPEC.md tests at 320), returning every stage's
    /// picture and timing:
    ///
    /// `{ width, height, origWidth, origHeight, backend, stages: {input, coarse, masked,
    /// gate1..gate5, inpainted, composite, correction, fine}, fineProb: Float32Array, maskPng:
    /// Uint8Array, coarseArea, fineArea, addedArea, removedArea, timings: {decode, coarse,
    /// fusion, segment, inpaint, pictures, total} }` (times in ms; areas as fractions of the
    /// image; `correction` and the added/removed areas: what stage 2 changed in the coarse mask,
    /// [`imageio::correction_map`], two-stage networks only).
    pub async fn segment(
        &self,
        bytes: Vec<u8>,
        name: String,
        size: u32,
    ) -> Result<Object, JsError> {
        check_size(size)?;
        let t_start = now();
        let img = imageio::decode_rgb(&bytes, &name).map_err(err)?;
        drop(bytes);
        let (ow, oh) = img.dimensions();
        let input_rgb = imageio::resize_rgb(&img, size, size);
        drop(img);
        let x = imageio::rgb_to_tensor(&input_rgb, &self.device);
        let n = size as usize;
        let t_decode = now();

        let out = Object::new();
        let stages = Object::new();
        let timings = Object::new();
        set(&stages, "input", picture_rgb(&input_rgb));
        let passes = stages::run(&self.model, x).await?;
        let [t_coarse, t_fusion, t_segment, t_inpaint] = passes.ends;
        let area = |p: &[f32]| p.iter().filter(|&&v| v >= 0.5).count() as f64 / p.len() as f64;
        let coarse_area = area(passes.coarse());
        let tp = now();
        stages::pictures(&passes, &input_rgb, n, &stages, &out);
        // The stage maps go before the mask's PNG is encoded.
        let fine_prob = passes.into_fine();
        let fine_mask = imageio::prob_to_mask(&fine_prob, n, n, size, size);
        set(&stages, "fine", picture_grey(&fine_mask));
        let mask_full = imageio::prob_to_mask(&fine_prob, n, n, ow, oh);
        let png = imageio::encode_png(&image::DynamicImage::ImageLuma8(mask_full)).map_err(err)?;
        let pictures_ms = now() - tp;

        set(&out, "width", size);
        set(&out, "height", size);
        set(&out, "origWidth", ow);
        set(&out, "origHeight", oh);
        set(&out, "backend", self.backend());
        set(&out, "coarseArea", coarse_area);
        set(&out, "fineArea", area(&fine_prob));
        set(&out, "fineProb", Float32Array::from(&fine_prob[..]));
        set(&out, "maskPng", Uint8Array::from(&png[..]));
        set(&timings, "decode", t_decode - t_start);
        set(&timings, "coarse", t_coarse - t_decode);
        set(&timings, "fusion", t_fusion - t_coarse);
        set(&timings, "segment", t_segment - t_fusion);
        set(&timings, "inpaint", t_inpaint - t_segment);
        set(&timings, "pictures", pictures_ms);
        set(&timings, "total", now() - t_start);
        set(&out, "stages", stages);
        set(&out, "timings", timings);
        Ok(out)
    }

    /// The two-stage forward of a planar RGB image `[3, h, w]` in [0, 1] (no decoding or
    /// resizing): returns `[coarse, fine]` probabilities concatenated (`2 * h * w` values).
    /// Used by the tests to compare with the native result.
    pub async fn forward_raw(
        &self,
        chw: Vec<f32>,
        w: usize,
        h: usize,
    ) -> Result<Vec<f32>, JsError> {
        if chw.len() != 3 * w * h {
            return Err(err(format!(
                "expected {} values for a 3x{h}x{w} image, got {}",
                3 * w * h,
                chw.len()
            )));
        }
        let x = Tensor::<4>::from_data(TensorData::new(chw, [1, 3, h, w]), &self.device);
        let out = self.model.forward(x).map_err(err)?;
        let fine = out.fine();
        Ok(read_all(vec![out.coarse, fine]).await?.concat())
    }

    /// Decodes an image file as [`Engine::segment`] would, without running the network:
    /// `{ width, height, format, notes: string[] }` (the upright size; one sentence per
    /// conversion a user should know about: grey, 16-bit, alpha, EXIF rotation, animation,
    /// tiny), or an error naming the file and the problem. The page checks every dropped file
    /// with it, so that a bad one is reported at once and never reaches the gallery.
    pub fn inspect(bytes: Vec<u8>, name: String) -> Result<Object, JsError> {
        let d = imageio::decode_full(&bytes, &name).map_err(err)?;
        let o = Object::new();
        set(&o, "width", d.image.width());
        set(&o, "height", d.image.height());
        set(&o, "format", d.format);
        let notes = Array::new();
        for n in d.notes() {
            notes.push(&JsValue::from_str(&n));
        }
        set(&o, "notes", notes);
        Ok(o)
    }

    /// Dice, IoU, accuracy, recall, specificity and precision (threshold 0.5) of a fine
    /// probability map (`w x h`, as returned by [`Engine::segment`]) against a ground-truth
    /// mask file, compared at the mask file's resolution. The mask must have the size of its
    /// image (`image_w x image_h`, the upright original): a mask of another size is refused
    /// as the mask of some other image.
    #[allow(clippy::too_many_arguments)]
    pub fn score(
        &self,
        fine_prob: Vec<f32>,
        w: usize,
        h: usize,
        image_w: u32,
        image_h: u32,
        mask: Vec<u8>,
        name: String,
    ) -> Result<Object, JsError> {
        if fine_prob.len() != w * h {
            return Err(err("the probability map does not match its size"));
        }
        let truth = imageio::decode_mask(&mask, &name).map_err(err)?;
        let (tw, th) = truth.dimensions();
        if (tw, th) != (image_w, image_h) {
            return Err(err(format!(
                "{name}: the mask is {tw}x{th} pixels but its image is {image_w}x{image_h}: is it the mask of another image?"
            )));
        }
        let pred = imageio::prob_to_mask(&fine_prob, w, h, tw, th);
        let to01 = |g: &GrayImage| -> Vec<f32> {
            g.pixels()
                .map(|p| if p[0] > 127 { 1.0 } else { 0.0 })
                .collect()
        };
        let s = Confusion::from_maps(&to01(&pred), &to01(&truth)).scores();
        let o = Object::new();
        set(&o, "dice", s.dice);
        set(&o, "iou", s.iou);
        set(&o, "accuracy", s.accuracy);
        set(&o, "recall", s.recall);
        set(&o, "specificity", s.specificity);
        set(&o, "precision", s.precision);
        Ok(o)
    }

    /// The adaptation objectives the page offers: `[{name, description, adabn, gradient,
    /// inpainting, prior}]` (`adabn`: starts with an AdaBN pass; `inpainting`: needs a
    /// two-stage network; `prior`: ends with prior matching), the default first.
    pub fn adapt_objectives() -> Array {
        let list = Array::new();
        let default = AdaptOptions::PAGE_DEFAULT;
        let names = std::iter::once(default)
            .chain(Objective::ALL.iter().copied().filter(|n| *n != default));
        for name in names {
            let o = Object::new();
            let obj = Objective::parse(name).expect("a known objective");
            set(&o, "name", name);
            set(&o, "description", obj.describe());
            set(&o, "adabn", obj.adabn);
            set(&o, "gradient", obj.loss.is_some());
            set(&o, "inpainting", obj.loss.is_some_and(|l| l.inpaints()));
            set(&o, "prior", obj.prior);
            list.push(&o);
        }
        list
    }

    /// The defaults of `objective` at working size `size` (the ones `scl adapt` uses):
    /// `{steps, lr, batch, crop, scope}`.
    pub fn adapt_defaults(objective: String, size: u32) -> Result<Object, JsError> {
        let o = AdaptOptions::new(Objective::parse(&objective).map_err(err)?, size);
        let out = Object::new();
        set(&out, "steps", o.steps as u32);
        set(&out, "lr", o.lr);
        set(&out, "batch", o.batch as u32);
        set(&out, "crop", o.crop);
        set(&out, "scope", o.scope().map(|s| s.name()).unwrap_or(""));
        Ok(out)
    }

    /// Starts (or restarts) adapting the current network to the user's unlabeled images
    /// (`crate::adapt`, the code `scl adapt` runs). `scope`: `""` for the objective's own.
    #[allow(clippy::too_many_arguments)]
    pub fn adapt_begin(
        &mut self,
        objective: String,
        steps: usize,
        lr: f64,
        batch: usize,
        size: u32,
        crop: u32,
        scope: String,
        seed: u64,
    ) -> Result<(), JsError> {
        let mut options = AdaptOptions::new(Objective::parse(&objective).map_err(err)?, size);
        options.steps = steps;
        options.lr = lr;
        options.batch = batch;
        options.crop = crop;
        options.scope = (!scope.is_empty())
            .then(|| Scope::parse(&scope))
            .transpose()
            .map_err(err)?;
        options.seed = seed;
        self.adapter = Some(Adapter::new(&self.model, &self.device, options).map_err(err)?);
        Ok(())
    }

    fn adapter(&mut self) -> Result<&mut Adapter, JsError> {
        self.adapter
            .as_mut()
            .ok_or_else(|| err("adaptation has not been started"))
    }

    /// Which of the `n` training images the next step reads (their indices).
    pub fn adapt_next_batch(&mut self, n: usize) -> Result<Vec<u32>, JsError> {
        Ok(self
            .adapter()?
            .next_batch(n)
            .into_iter()
            .map(|i| i as u32)
            .collect())
    }

    /// One AdaBN batch: image files decoded, resized to the working size and cropped as in
    /// training ([`Adapter::adabn_images`]); no gradient.
    pub fn adapt_adabn(&mut self, files: Array, names: Array) -> Result<(), JsError> {
        let size = self.adapter()?.options().size;
        let imgs = decode_all(&files, &names, size)?;
        let a = self.adapter()?;
        a.adabn_images(&imgs).map_err(err)?;
        self.model = a.model().map_err(err)?;
        Ok(())
    }

    /// One gradient step on a batch of image files (decoded, resized and augmented into random
    /// crops). Returns `{loss, foreground, stopped}` (`stopped`: the collapse guard's message,
    /// after which the weights are the last healthy ones). Only the batch's images are decoded:
    /// memory does not grow with the number of images loaded in the page.
    pub async fn adapt_step(&mut self, files: Array, names: Array) -> Result<Object, JsError> {
        let size = self.adapter()?.options().size;
        let imgs = decode_all(&files, &names, size)?;
        let a = self.adapter()?;
        let x = a.crops(&imgs);
        let pending = a.step(x).map_err(err)?;
        let loss = read1(pending.loss).await?;
        let fg = read1(pending.foreground).await?;
        let a = self.adapter()?;
        let verdict = a.record(loss, fg);
        self.model = a.model().map_err(err)?;
        let out = Object::new();
        set(&out, "loss", loss);
        set(&out, "foreground", fg);
        if let Verdict::Collapsed { message } = verdict {
            set(&out, "stopped", message);
        }
        Ok(out)
    }

    /// One batch of a prior-matching round (after AdaBN and the gradient steps): the image
    /// files at the working size through the adapted network, their fine logits read back and
    /// recorded ([`Adapter::prior_images`]).
    pub async fn adapt_prior(&mut self, files: Array, names: Array) -> Result<(), JsError> {
        let size = self.adapter()?.options().size;
        let imgs = decode_all(&files, &names, size)?;
        let z = read_vec(self.adapter()?.prior_images(&imgs).map_err(err)?).await?;
        self.adapter()?.prior_record(&z);
        Ok(())
    }

    /// Starts a prior-matching round ([`Adapter::prior_begin_round`]): the logits of a round
    /// that was stopped part-way are forgotten (a resumed run measures every image once).
    pub fn adapt_prior_round(&mut self) -> Result<(), JsError> {
        self.adapter()?.prior_begin_round().map_err(err)
    }

    /// Ends a prior-matching round: `{again, offset, foreground}`; with `again` the output bias
    /// was shifted to `offset` and every image goes through [`Engine::adapt_prior`] once more
    /// (`foreground`: the lesion fraction this round measured).
    pub fn adapt_prior_end(&mut self) -> Result<Object, JsError> {
        let a = self.adapter()?;
        let again = a.prior_apply().map_err(err)?;
        let last = a.prior_rounds().last().copied();
        self.model = a.model().map_err(err)?;
        let out = Object::new();
        set(&out, "again", again);
        if let Some(r) = last {
            set(&out, "offset", r.offset);
            set(&out, "foreground", r.foreground);
        }
        Ok(out)
    }

    /// Gradient steps taken since [`Engine::adapt_begin`].
    pub fn adapt_steps(&self) -> usize {
        self.adapter.as_ref().map_or(0, |a| a.steps())
    }

    /// The current network's weights as a Burnpack file (`f16` halves the size), readable by
    /// [`Engine::load_weights`] and by the native `scl` CLI. Parameters are read from the
    /// device asynchronously into a CPU copy of the network, then serialised.
    pub async fn export_weights(&self, f16: bool) -> Result<Vec<u8>, JsError> {
        let cpu = to_flex(&self.model).await?;
        let precision = if f16 { Precision::F16 } else { Precision::F32 };
        weights::to_bytes(&cpu, precision).map_err(err)
    }
}

/// Decodes image files and resizes them to `size x size`.
fn decode_all(files: &Array, names: &Array, size: u32) -> Result<Vec<RgbImage>, JsError> {
    let b = files.length();
    if b == 0 {
        return Err(err("no images to adapt to"));
    }
    (0..b)
        .map(|i| {
            let bytes = Uint8Array::new(&files.get(i)).to_vec();
            let name = names
                .get(i)
                .as_string()
                .unwrap_or_else(|| format!("image {i}"));
            let img = imageio::decode_rgb(&bytes, &name).map_err(err)?;
            Ok(imageio::resize_rgb(&img, size, size))
        })
        .collect()
}

/// Reads a float tensor asynchronously.
async fn read_vec(t: Tensor<1>) -> Result<Vec<f32>, JsError> {
    t.into_data_async()
        .await
        .map_err(err)?
        .try_into_vec::<f32>()
        .map_err(|e| err(format!("reading a tensor failed: {e:?}")))
}

/// Reads a one-element tensor asynchronously.
async fn read1(t: Tensor<1>) -> Result<f64, JsError> {
    Ok(read_vec(t).await?[0] as f64)
}

/// A copy of `model` on the Flex (CPU) device, read asynchronously.
async fn to_flex(model: &Scl) -> Result<Scl, JsError> {
    struct Collect(Transaction);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let t = std::mem::take(&mut self.0);
            self.0 = t.register(p.val());
        }
    }
    let mut c = Collect(Transaction::default());
    model.visit(&mut c);
    let data =
        c.0.execute_async()
            .await
            .map_err(|e| err(format!("{e:?}")))?;
    struct Apply(std::vec::IntoIter<TensorData>);
    impl ModuleMapper for Apply {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let d = self.0.next().expect("same structure");
            p.map(|t| Tensor::from_data(d, &t.device()))
        }
    }
    let flex = Scl::new(&model.config, &Device::flex()).map_err(err)?;
    Ok(flex.map(&mut Apply(data.into_iter())))
}

// Passkeys (WebAuthn): registered and used from the second-factor pages.
// The pages work without this script for the other factors. It binds the
// buttons #passkey-register and #passkey-login, which name their endpoints
// in data-begin and data-finish and where to go after in data-next; errors
// go to #passkey-error. Loaded from /static (the CSP allows no inline
// script); every request is a same-origin fetch, so it carries
// Sec-Fetch-Site: same-origin, which the platform's cross-origin check asks.
(function () {
  "use strict";

  // base64url (the platform's encoding of binary fields) <-> ArrayBuffer.
  function fromB64u(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function toB64u(buf) {
    var b = new Uint8Array(buf), s = "";
    for (var i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // localPath keeps navigation on this site: a path, never a URL.
  function localPath(p, fallback) {
    return typeof p === "string" && p.charAt(0) === "/" && p.charAt(1) !== "/" && p.indexOf("\\") < 0 ? p : fallback;
  }

  // post sends JSON to the platform and returns its JSON answer; a refusal
  // throws an Error with the platform's message and code.
  async function post(url, body) {
    var resp = await fetch(url, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body || {})
    });
    var data = null;
    try { data = await resp.json(); } catch (e) { /* no JSON body */ }
    if (!resp.ok) {
      var detail = data && data.error ? data.error : {};
      var err = new Error(detail.message || "The platform answered " + resp.status + ".");
      err.code = detail.code || "";
      throw err;
    }
    return data;
  }

  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = fromB64u(pk.challenge);
    pk.user.id = fromB64u(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = fromB64u(c.id); });
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = fromB64u(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = fromB64u(c.id); });
    return { publicKey: pk };
  }

  // credentialJSON is the PublicKeyCredential as the platform reads it
  // (the WebAuthn JSON form: binary fields in base64url).
  function credentialJSON(c) {
    var r = c.response;
    var out = {
      id: c.id, rawId: toB64u(c.rawId), type: c.type,
      authenticatorAttachment: c.authenticatorAttachment || undefined,
      clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64u(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64u(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toB64u(r.authenticatorData);
      out.response.signature = toB64u(r.signature);
      if (r.userHandle) out.response.userHandle = toB64u(r.userHandle);
    }
    return out;
  }

  // explain turns a browser's refusal into a sentence that says what to do.
  function explain(e) {
    switch (e && e.name) {
      case "NotAllowedError":
        return "The passkey request was cancelled or timed out, or this device holds no passkey of this account. Try again, or use another factor.";
      case "InvalidStateError":
        return "This authenticator already holds a passkey of your account.";
      case "SecurityError":
        return "This browser refuses passkeys at this address: the platform's public URL must be a host name over HTTPS.";
      case "NotSupportedError":
        return "This authenticator cannot make a passkey this platform accepts.";
    }
    return e && e.message ? e.message : String(e);
  }

  // secondFactorFirst sends the browser to confirm its second factor and
  // come back, when the platform asks for it.
  function secondFactorFirst(e) {
    if (e.code === "step_up_required" || e.code === "mfa_required") {
      window.location.assign("/login/mfa?next=" + encodeURIComponent(window.location.pathname));
      return true;
    }
    return false;
  }

  function showCodes(codes, next) {
    var box = document.getElementById("passkey-codes");
    var list = document.getElementById("recovery-codes");
    var go = document.getElementById("passkey-continue");
    list.textContent = "";
    codes.forEach(function (code) {
      var li = document.createElement("li");
      li.textContent = code;
      list.appendChild(li);
    });
    if (go) go.href = next;
    ["passkey-register", "passkey-name-field"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.style.display = "none";
    });
    box.hidden = false;
    if (go) go.focus();
  }

  async function register(btn) {
    var opts = await post(btn.dataset.begin);
    var cred = await navigator.credentials.create(creationOptions(opts));
    var name = document.getElementById("passkey-name");
    var done = await post(btn.dataset.finish, { name: name ? name.value : "", credential: credentialJSON(cred) });
    var next = localPath(btn.dataset.next, "/");
    if (done && done.recovery_codes && done.recovery_codes.length && document.getElementById("passkey-codes")) {
      showCodes(done.recovery_codes, next);
      return;
    }
    window.location.assign(next);
  }

  async function login(btn) {
    var opts = await post(btn.dataset.begin);
    var cred = await navigator.credentials.get(requestOptions(opts));
    await post(btn.dataset.finish, { credential: credentialJSON(cred) });
    window.location.assign(localPath(btn.dataset.next, "/"));
  }

  function bind(id, run) {
    var btn = document.getElementById(id);
    if (!btn) return;
    var error = document.getElementById("passkey-error");
    var say = function (msg) { if (error) error.textContent = msg; };
    if (!window.PublicKeyCredential || !navigator.credentials || !window.fetch) {
      btn.disabled = true;
      say("This browser cannot use passkeys: use another factor.");
      return;
    }
    btn.addEventListener("click", async function () {
      if (btn.disabled) return;
      btn.disabled = true;
      btn.setAttribute("aria-busy", "true");
      say("");
      try {
        await run(btn);
      } catch (e) {
        if (!secondFactorFirst(e)) say(explain(e));
      } finally {
        btn.disabled = false;
        btn.removeAttribute("aria-busy");
      }
    });
    btn.dataset.ready = "true"; // for tests and scripts: the handler is bound
  }

  bind("passkey-register", register);
  bind("passkey-login", login);
})();

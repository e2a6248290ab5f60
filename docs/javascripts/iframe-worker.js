// Search for pages opened from disk (file://).  Material's search runs in a Web Worker, and
// browsers refuse `new Worker(url)` for file:// pages.  Material's offline plugin therefore
// loads a stand-in from a CDN, which this site never does: this file is the stand-in.  Its
// name contains "iframe-worker" so that the plugin sees a polyfill is already there.
//
// The worker script runs in a hidden about:blank iframe, which shares this page's origin:
// the script's postMessage() calls come back here as "message" events on the worker object,
// and worker.postMessage(data) reaches the script as a "message" event on its window.  Only
// what Material's search worker uses is provided (no importScripts, no transfer lists).
(function () {
  "use strict";
  if (location.protocol !== "file:") {
    return;                                   // over HTTP the real Worker works
  }

  class FrameWorker extends EventTarget {
    constructor(url) {
      super();
      this.onmessage = null;
      this.onerror = null;
      this.pending = [];                      // messages sent before the script has loaded
      this.loaded = false;
      this.frame = document.createElement("iframe");
      this.frame.style.display = "none";
      this.frame.setAttribute("aria-hidden", "true");
      document.body.appendChild(this.frame);
      const global = this.frame.contentWindow;
      global.postMessage = (data) => this.receive(data);
      global.importScripts = () => {
        throw new Error("importScripts is not available in the file:// worker stand-in");
      };
      const script = global.document.createElement("script");
      script.src = new URL(url, location.href).href;
      script.onload = () => {
        this.loaded = true;
        for (const data of this.pending.splice(0)) {
          this.postMessage(data);
        }
      };
      script.onerror = () => this.fail(new Error("could not load the worker script " + script.src));
      global.document.head.appendChild(script);
    }

    // from the page to the worker script
    postMessage(data) {
      if (!this.loaded) {
        this.pending.push(data);
        return;
      }
      const global = this.frame.contentWindow;
      setTimeout(() => global.dispatchEvent(new global.MessageEvent("message", { data })), 0);
    }

    // from the worker script to the page
    receive(data) {
      const event = new MessageEvent("message", { data });
      setTimeout(() => {
        this.dispatchEvent(event);
        if (typeof this.onmessage === "function") {
          this.onmessage(event);
        }
      }, 0);
    }

    fail(error) {
      const event = new ErrorEvent("error", { error, message: error.message });
      this.dispatchEvent(event);
      if (typeof this.onerror === "function") {
        this.onerror(event);
      }
    }

    terminate() {
      this.frame.remove();
    }
  }

  window.Worker = FrameWorker;
})();

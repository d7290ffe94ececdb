// Progressive enhancement: like and follow buttons act at once through the
// REST API instead of reloading the page. Every form works without this file;
// on any failure the form is simply submitted the ordinary way.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (!meta || !window.fetch) return;
  var token = meta.getAttribute("content");

  function call(method, url) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": token, Accept: "application/json" },
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    });
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function like(form) {
    var id = form.getAttribute("data-photo");
    var liked = form.getAttribute("data-liked") === "true";
    return call(liked ? "DELETE" : "PUT", "/api/v1/photos/" + id + "/like").then(function (state) {
      var now = state.liked === true;
      form.setAttribute("data-liked", now ? "true" : "false");
      form.setAttribute("action", "/p/" + id + "/" + (now ? "unlike" : "like"));
      var button = form.querySelector("button");
      button.textContent = now ? "\u2665 Liked" : "\u2661 Like";
      button.setAttribute("aria-pressed", now ? "true" : "false");
      button.classList.toggle("on", now);
      var counts = document.querySelectorAll('[data-likes-for="' + id + '"]');
      for (var i = 0; i < counts.length; i++) {
        counts[i].textContent = plural(state.like_count, "like");
      }
    });
  }

  function follow(form) {
    var user = form.getAttribute("data-user");
    var state = form.getAttribute("data-state");
    var url = "/api/v1/users/" + encodeURIComponent(user) + "/follow";
    return call(state === "none" ? "PUT" : "DELETE", url).then(function (profile) {
      var now = profile.followed_by_me ? "following" : profile.requested_by_me ? "requested" : "none";
      form.setAttribute("data-state", now);
      form.setAttribute("action", "/u/" + user + "/" + (now === "none" ? "follow" : "unfollow"));
      var button = form.querySelector("button");
      var isPrivate = form.getAttribute("data-private") === "true";
      button.textContent =
        now === "following" ? "Unfollow"
        : now === "requested" ? "Cancel request"
        : isPrivate ? "Request to follow" : "Follow";
      button.classList.toggle("secondary", now !== "none");
      var followers = document.querySelector("[data-followers]");
      if (followers && typeof profile.follower_count === "number") {
        followers.textContent = String(profile.follower_count);
        var word = document.querySelector("[data-followers-word]");
        if (word) word.textContent = profile.follower_count === 1 ? "follower" : "followers";
      }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var act = form.classList.contains("like-form") ? like
      : form.classList.contains("follow-form") ? follow : null;
    if (!act) return;
    event.preventDefault();
    if (form.getAttribute("data-busy")) return;
    form.setAttribute("data-busy", "1");
    act(form).then(
      function () { form.removeAttribute("data-busy"); },
      function () { form.submit(); }  // the ordinary POST-redirect-GET
    );
  });
})();

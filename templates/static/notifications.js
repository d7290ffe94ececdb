// Live notifications on /notifications: new ones arrive over /ws and are put
// at the top of the list. After a drop it reconnects with ?since=<newest id>,
// so the server replays whatever was missed meanwhile. Without JavaScript the
// page still works; it just needs a reload.
(function () {
  "use strict";
  var list = document.querySelector("ul.notifications[data-live]");
  if (!list || !("WebSocket" in window)) return;
  var since = list.getAttribute("data-since") || "";
  var delay = 1000;

  function newer(id) {
    // Ids are 64-bit: compare as decimal strings of digits, not as numbers.
    if (!since) return true;
    return id.length > since.length || (id.length === since.length && id > since);
  }

  function item(n) {
    var li = document.createElement("li");
    li.className = n.kind + " unread";
    var avatar = document.createElement("span");
    avatar.className = "avatar small";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = (n.actor.username || "?").charAt(0).toUpperCase();
    var link = document.createElement("a");
    link.href = n.photo_id ? "/p/" + n.photo_id : "/u/" + encodeURIComponent(n.actor.username);
    link.textContent = n.text; // text, never HTML: it holds what users wrote
    var when = document.createElement("time");
    when.className = "muted";
    when.setAttribute("datetime", n.created_at);
    when.textContent = "now";
    li.append(avatar, " ", link, " ", when);
    return li;
  }

  function bumpBadge() {
    var bell = document.querySelector("a.bell");
    if (!bell) return;
    var badge = bell.querySelector(".badge");
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "badge";
      bell.append(" ", badge);
      badge.textContent = "0";
    }
    var count = parseInt(badge.textContent, 10) || 0;
    badge.textContent = count >= 99 ? "99+" : String(count + 1);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + location.host + "/ws" + (since ? "?since=" + since : "");
    var ws = new WebSocket(url);
    ws.onopen = function () { delay = 1000; };
    ws.onmessage = function (message) {
      var n;
      try { n = JSON.parse(message.data); } catch (e) { return; }
      if (n.type !== "notification" || !newer(n.id)) return;
      since = n.id;
      list.prepend(item(n));
      var empty = document.querySelector("p.empty");
      if (empty) empty.remove();
      bumpBadge();
    };
    ws.onclose = function () {
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();

// Loaded into Omniboard's node process by `incasem board` (node --require): Omniboard listens
// on every network interface and has no option to choose one; this makes every server socket
// it opens on a port listen on 127.0.0.1 only.
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === 'number' || typeof port === 'string') {
    const callback = rest.find((argument) => typeof argument === 'function');
    return listen.call(this, Number(port), '127.0.0.1', ...(callback ? [callback] : []));
  }
  return listen.call(this, port, ...rest);
};

package devicesim

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// The MQTT 3.1.1 packets themselves are encoded and decoded by paho's
// packets package; this file only frames them with a bound, so that a
// hostile length cannot make a device allocate what it likes.

// MaxPacketBytes is the largest MQTT packet a device reads: Mosquitto's
// max_packet_size in deploy/mosquitto/cafe.conf (2 MiB) with room to
// spare. A longer one ends the connection (and the device reconnects).
const MaxPacketBytes = 4 << 20

// errPacketTooLarge is what a packet over MaxPacketBytes gets.
var errPacketTooLarge = errors.New("mqtt packet larger than the device accepts")

// readPacket reads one MQTT packet from r. It reads the fixed header
// itself (type, flags, remaining length) to check the length before
// allocating, then lets packets decode the body. No buffer outlives the
// call: an idle device holds none.
func readPacket(r io.Reader) (packets.ControlPacket, error) {
	var first [1]byte
	if _, err := io.ReadFull(r, first[:]); err != nil {
		return nil, err
	}
	n, err := remainingLength(r)
	if err != nil {
		return nil, err
	}
	if n > MaxPacketBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errPacketTooLarge, n, MaxPacketBytes)
	}
	fh := packets.FixedHeader{
		MessageType:     first[0] >> 4,
		Dup:             first[0]&0x08 != 0,
		Qos:             (first[0] >> 1) & 0x03,
		Retain:          first[0]&0x01 != 0,
		RemainingLength: n,
	}
	cp, err := packets.NewControlPacketWithHeader(fh)
	if err != nil {
		return nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	if err := cp.Unpack(bytes.NewBuffer(body)); err != nil {
		return nil, fmt.Errorf("malformed mqtt %s packet: %w", packets.PacketNames[fh.MessageType], err)
	}
	return cp, nil
}

// remainingLength decodes the fixed header's variable-length integer (MQTT
// 3.1.1, 2.2.3): at most four bytes, seven bits each, low bits first.
func remainingLength(r io.Reader) (int, error) {
	var b [1]byte
	n, shift := 0, 0
	for i := 0; i < 4; i++ {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, err
		}
		n |= int(b[0]&0x7f) << shift
		if b[0]&0x80 == 0 {
			return n, nil
		}
		shift += 7
	}
	return 0, errors.New("malformed mqtt packet: remaining length longer than four bytes")
}

using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Quantize.Kernels.Quantization;

/// <summary>
/// Packs 4-bit values two per byte, the first in the low nibble (ONNX int4/uint4 and the blocked
/// weight formats), and unpacks them, sign-extending int4. Vectorized, with scalar twins.
/// </summary>
public static class Int4Packing
{
    /// <summary>Bytes needed for <paramref name="count"/> 4-bit values.</summary>
    public static int PackedLength(int count) => (count + 1) / 2;

    /// <summary>Packs values in -8..7 or 0..15 (only the low 4 bits of each are kept). An odd last value leaves the high nibble 0.</summary>
    public static void Pack(ReadOnlySpan<sbyte> values, Span<byte> packed) => Pack(MemoryMarshal.AsBytes(values), packed);

    /// <summary>Packs values in 0..15 (only the low 4 bits of each are kept). An odd last value leaves the high nibble 0.</summary>
    public static void Pack(ReadOnlySpan<byte> values, Span<byte> packed) => Pack(values, packed, vectorized: true);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    internal static void Pack(ReadOnlySpan<byte> values, Span<byte> packed, bool vectorized)
    {
        int pairs = values.Length / 2;
        if (packed.Length < PackedLength(values.Length)) throw new ArgumentException("The packed destination is too short.", nameof(packed));
        int i = 0;
        if (vectorized && Vector256.IsHardwareAccelerated)
        {
            // 64 values = 32 little-endian pairs, read as two vectors of 16-bit (low value | high value << 8).
            var lowNibble = Vector256.Create((ushort)0x000F);
            var highNibble = Vector256.Create((ushort)0x00F0);
            ref byte source = ref MemoryMarshal.GetReference(values);
            ref byte destination = ref MemoryMarshal.GetReference(packed);
            for (; i + 32 <= pairs; i += 32)
            {
                var a = Vector256.LoadUnsafe(ref source, (nuint)(2 * i)).AsUInt16();
                var b = Vector256.LoadUnsafe(ref source, (nuint)(2 * i + 32)).AsUInt16();
                a = (a & lowNibble) | (Vector256.ShiftRightLogical(a, 4) & highNibble);
                b = (b & lowNibble) | (Vector256.ShiftRightLogical(b, 4) & highNibble);
                Vector256.Narrow(a, b).StoreUnsafe(ref destination, (nuint)i);
            }
        }
        for (; i < pairs; i++)
            packed[i] = (byte)((values[2 * i] & 0x0F) | (values[2 * i + 1] << 4));
        if ((values.Length & 1) != 0)
            packed[pairs] = (byte)(values[^1] & 0x0F);
    }

    /// <summary>Unpacks <paramref name="values"/>.Length int4 values, sign-extended to -8..7.</summary>
    public static void Unpack(ReadOnlySpan<byte> packed, Span<sbyte> values) => Unpack(packed, MemoryMarshal.AsBytes(values), signed: true, vectorized: true);

    /// <summary>Unpacks <paramref name="values"/>.Length uint4 values (0..15).</summary>
    public static void Unpack(ReadOnlySpan<byte> packed, Span<byte> values) => Unpack(packed, values, signed: false, vectorized: true);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    internal static void Unpack(ReadOnlySpan<byte> packed, Span<byte> values, bool signed, bool vectorized)
    {
        if (packed.Length < PackedLength(values.Length)) throw new ArgumentException("The packed source is too short.", nameof(packed));
        int pairs = values.Length / 2;
        int i = 0;
        if (vectorized && Vector256.IsHardwareAccelerated)
        {
            var nibble = Vector256.Create((ushort)0x000F);
            var eight = Vector256.Create((byte)8);
            ref byte source = ref MemoryMarshal.GetReference(packed);
            ref byte destination = ref MemoryMarshal.GetReference(values);
            for (; i + 16 <= pairs; i += 16)
            {
                var bytes = Vector256.WidenLower(Vector128.LoadUnsafe(ref source, (nuint)i).ToVector256());
                // Each 16-bit lane becomes (low nibble) | (high nibble << 8): two values in order.
                var pair = (bytes & nibble) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(bytes, 4) & nibble, 8);
                var result = pair.AsByte();
                if (signed) result = (result ^ eight) - eight;
                result.StoreUnsafe(ref destination, (nuint)(2 * i));
            }
        }
        for (; i < pairs; i++)
        {
            values[2 * i] = Nibble(packed[i] & 0x0F, signed);
            values[2 * i + 1] = Nibble(packed[i] >> 4, signed);
        }
        if ((values.Length & 1) != 0)
            values[^1] = Nibble(packed[pairs] & 0x0F, signed);
    }

    private static byte Nibble(int value, bool signed) => (byte)(signed ? ((value ^ 8) - 8) : value);
}

namespace Quantize.Kernels.Models;

/// <summary>
/// The element type of a stored tensor, covering the types of both ONNX and TensorFlow.
/// TensorFlow's quantized types (<c>qint8</c>, <c>quint8</c>, ...) are kept apart from plain
/// integers because they carry a range elsewhere in the graph.
/// </summary>
public enum TensorElementType
{
    /// <summary>Not set or not known to us.</summary>
    Undefined = 0,
    /// <summary>IEEE 754 binary32.</summary>
    Float32,
    /// <summary>IEEE 754 binary64.</summary>
    Float64,
    /// <summary>IEEE 754 binary16.</summary>
    Float16,
    /// <summary>bfloat16: the top 16 bits of a binary32.</summary>
    BFloat16,
    /// <summary>Signed 8-bit integer.</summary>
    Int8,
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8,
    /// <summary>Signed 16-bit integer.</summary>
    Int16,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16,
    /// <summary>Signed 32-bit integer.</summary>
    Int32,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32,
    /// <summary>Signed 64-bit integer.</summary>
    Int64,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64,
    /// <summary>Boolean, one byte per element (0 or 1).</summary>
    Bool,
    /// <summary>Byte strings; see <see cref="TensorData.Strings"/>.</summary>
    String,
    /// <summary>Two binary32 values, real first.</summary>
    Complex64,
    /// <summary>Two binary64 values, real first.</summary>
    Complex128,
    /// <summary>Signed 4-bit integer, two per byte, the first element in the low nibble.</summary>
    Int4,
    /// <summary>Unsigned 4-bit integer, two per byte, the first element in the low nibble.</summary>
    UInt4,
    /// <summary>Signed 2-bit integer, four per byte, the first element in the lowest bits.</summary>
    Int2,
    /// <summary>Unsigned 2-bit integer, four per byte, the first element in the lowest bits.</summary>
    UInt2,
    /// <summary>8-bit float, 4 exponent bits, 3 mantissa bits, finite only (OCP E4M3).</summary>
    Float8E4M3FN,
    /// <summary>8-bit float E4M3 with no negative zero (NaN is 0x80).</summary>
    Float8E4M3FNUZ,
    /// <summary>8-bit float, 5 exponent bits, 2 mantissa bits (OCP E5M2).</summary>
    Float8E5M2,
    /// <summary>8-bit float E5M2 with no negative zero (NaN is 0x80).</summary>
    Float8E5M2FNUZ,
    /// <summary>8-bit exponent-only scale (OCP MX E8M0).</summary>
    Float8E8M0,
    /// <summary>4-bit float E2M1, two per byte.</summary>
    Float4E2M1,
    /// <summary>TensorFlow quantized signed 8-bit.</summary>
    QInt8,
    /// <summary>TensorFlow quantized unsigned 8-bit.</summary>
    QUInt8,
    /// <summary>TensorFlow quantized signed 16-bit.</summary>
    QInt16,
    /// <summary>TensorFlow quantized unsigned 16-bit.</summary>
    QUInt16,
    /// <summary>TensorFlow quantized signed 32-bit (accumulators).</summary>
    QInt32,
}

/// <summary>Sizes and names of <see cref="TensorElementType"/> values.</summary>
public static class TensorElementTypeInfo
{
    /// <summary>Bits one element occupies in packed storage (0 for strings and unknown types).</summary>
    public static int BitsPerElement(this TensorElementType type) => type switch
    {
        TensorElementType.Float32 or TensorElementType.Int32 or TensorElementType.UInt32 or TensorElementType.QInt32 => 32,
        TensorElementType.Float64 or TensorElementType.Int64 or TensorElementType.UInt64 or TensorElementType.Complex64 => 64,
        TensorElementType.Complex128 => 128,
        TensorElementType.Float16 or TensorElementType.BFloat16 or TensorElementType.Int16 or TensorElementType.UInt16
            or TensorElementType.QInt16 or TensorElementType.QUInt16 => 16,
        TensorElementType.Int8 or TensorElementType.UInt8 or TensorElementType.Bool or TensorElementType.QInt8
            or TensorElementType.QUInt8 or TensorElementType.Float8E4M3FN or TensorElementType.Float8E4M3FNUZ
            or TensorElementType.Float8E5M2 or TensorElementType.Float8E5M2FNUZ or TensorElementType.Float8E8M0 => 8,
        TensorElementType.Int4 or TensorElementType.UInt4 or TensorElementType.Float4E2M1 => 4,
        TensorElementType.Int2 or TensorElementType.UInt2 => 2,
        _ => 0,
    };

    /// <summary>Bytes that <paramref name="elementCount"/> packed elements occupy, rounded up to whole bytes.</summary>
    /// <exception cref="OverflowException">The size does not fit in 64 bits.</exception>
    public static long ByteCount(this TensorElementType type, long elementCount)
    {
        long bits = checked(elementCount * type.BitsPerElement());
        return bits / 8 + (bits % 8 == 0 ? 0 : 1);
    }

    /// <summary>True for types stored as whole bytes per element (not sub-byte, not string).</summary>
    public static bool IsFixedSize(this TensorElementType type) => type.BitsPerElement() >= 8;

    /// <summary>True for floating-point types of any width.</summary>
    public static bool IsFloatingPoint(this TensorElementType type) => type is TensorElementType.Float32
        or TensorElementType.Float64 or TensorElementType.Float16 or TensorElementType.BFloat16
        or TensorElementType.Float8E4M3FN or TensorElementType.Float8E4M3FNUZ or TensorElementType.Float8E5M2
        or TensorElementType.Float8E5M2FNUZ or TensorElementType.Float8E8M0 or TensorElementType.Float4E2M1;

    /// <summary>True for the integer types that quantized weights and activations use (8 bits or fewer, or TensorFlow's q-types).</summary>
    public static bool IsQuantizedStorage(this TensorElementType type) => type is TensorElementType.Int8
        or TensorElementType.UInt8 or TensorElementType.Int4 or TensorElementType.UInt4 or TensorElementType.Int2
        or TensorElementType.UInt2 or TensorElementType.QInt8 or TensorElementType.QUInt8 or TensorElementType.QInt16
        or TensorElementType.QUInt16 or TensorElementType.QInt32;

    /// <summary>The lower-case name used in reports, e.g. <c>float32</c>, <c>int4</c>, <c>quint8</c>.</summary>
    public static string DisplayName(this TensorElementType type) => type switch
    {
        TensorElementType.Undefined => "undefined",
        TensorElementType.Float8E4M3FN => "float8e4m3fn",
        TensorElementType.Float8E4M3FNUZ => "float8e4m3fnuz",
        TensorElementType.Float8E5M2 => "float8e5m2",
        TensorElementType.Float8E5M2FNUZ => "float8e5m2fnuz",
        TensorElementType.Float8E8M0 => "float8e8m0",
        TensorElementType.Float4E2M1 => "float4e2m1",
        _ => type.ToString().ToLowerInvariant(),
    };
}

namespace Quantize.Kernels.Models.Onnx;

/// <summary>Maps ONNX <c>TensorProto.DataType</c> numbers to <see cref="TensorElementType"/> and back.</summary>
public static class OnnxElementTypes
{
    /// <summary>The element type of an ONNX data type number; <see cref="TensorElementType.Undefined"/> when unknown.</summary>
    public static TensorElementType ToElementType(int onnxDataType) => (TensorProto.Types.DataType)onnxDataType switch
    {
        TensorProto.Types.DataType.Float => TensorElementType.Float32,
        TensorProto.Types.DataType.Uint8 => TensorElementType.UInt8,
        TensorProto.Types.DataType.Int8 => TensorElementType.Int8,
        TensorProto.Types.DataType.Uint16 => TensorElementType.UInt16,
        TensorProto.Types.DataType.Int16 => TensorElementType.Int16,
        TensorProto.Types.DataType.Int32 => TensorElementType.Int32,
        TensorProto.Types.DataType.Int64 => TensorElementType.Int64,
        TensorProto.Types.DataType.String => TensorElementType.String,
        TensorProto.Types.DataType.Bool => TensorElementType.Bool,
        TensorProto.Types.DataType.Float16 => TensorElementType.Float16,
        TensorProto.Types.DataType.Double => TensorElementType.Float64,
        TensorProto.Types.DataType.Uint32 => TensorElementType.UInt32,
        TensorProto.Types.DataType.Uint64 => TensorElementType.UInt64,
        TensorProto.Types.DataType.Complex64 => TensorElementType.Complex64,
        TensorProto.Types.DataType.Complex128 => TensorElementType.Complex128,
        TensorProto.Types.DataType.Bfloat16 => TensorElementType.BFloat16,
        TensorProto.Types.DataType.Float8E4M3Fn => TensorElementType.Float8E4M3FN,
        TensorProto.Types.DataType.Float8E4M3Fnuz => TensorElementType.Float8E4M3FNUZ,
        TensorProto.Types.DataType.Float8E5M2 => TensorElementType.Float8E5M2,
        TensorProto.Types.DataType.Float8E5M2Fnuz => TensorElementType.Float8E5M2FNUZ,
        TensorProto.Types.DataType.Uint4 => TensorElementType.UInt4,
        TensorProto.Types.DataType.Int4 => TensorElementType.Int4,
        TensorProto.Types.DataType.Float4E2M1 => TensorElementType.Float4E2M1,
        TensorProto.Types.DataType.Float8E8M0 => TensorElementType.Float8E8M0,
        TensorProto.Types.DataType.Uint2 => TensorElementType.UInt2,
        TensorProto.Types.DataType.Int2 => TensorElementType.Int2,
        _ => TensorElementType.Undefined,
    };

    /// <summary>The ONNX data type number of an element type.</summary>
    /// <exception cref="ArgumentException">ONNX has no such type (TensorFlow's quantized types).</exception>
    public static int ToOnnx(TensorElementType type) => (int)(type switch
    {
        TensorElementType.Float32 => TensorProto.Types.DataType.Float,
        TensorElementType.UInt8 => TensorProto.Types.DataType.Uint8,
        TensorElementType.Int8 => TensorProto.Types.DataType.Int8,
        TensorElementType.UInt16 => TensorProto.Types.DataType.Uint16,
        TensorElementType.Int16 => TensorProto.Types.DataType.Int16,
        TensorElementType.Int32 => TensorProto.Types.DataType.Int32,
        TensorElementType.Int64 => TensorProto.Types.DataType.Int64,
        TensorElementType.String => TensorProto.Types.DataType.String,
        TensorElementType.Bool => TensorProto.Types.DataType.Bool,
        TensorElementType.Float16 => TensorProto.Types.DataType.Float16,
        TensorElementType.Float64 => TensorProto.Types.DataType.Double,
        TensorElementType.UInt32 => TensorProto.Types.DataType.Uint32,
        TensorElementType.UInt64 => TensorProto.Types.DataType.Uint64,
        TensorElementType.Complex64 => TensorProto.Types.DataType.Complex64,
        TensorElementType.Complex128 => TensorProto.Types.DataType.Complex128,
        TensorElementType.BFloat16 => TensorProto.Types.DataType.Bfloat16,
        TensorElementType.Float8E4M3FN => TensorProto.Types.DataType.Float8E4M3Fn,
        TensorElementType.Float8E4M3FNUZ => TensorProto.Types.DataType.Float8E4M3Fnuz,
        TensorElementType.Float8E5M2 => TensorProto.Types.DataType.Float8E5M2,
        TensorElementType.Float8E5M2FNUZ => TensorProto.Types.DataType.Float8E5M2Fnuz,
        TensorElementType.UInt4 => TensorProto.Types.DataType.Uint4,
        TensorElementType.Int4 => TensorProto.Types.DataType.Int4,
        TensorElementType.Float4E2M1 => TensorProto.Types.DataType.Float4E2M1,
        TensorElementType.Float8E8M0 => TensorProto.Types.DataType.Float8E8M0,
        TensorElementType.UInt2 => TensorProto.Types.DataType.Uint2,
        TensorElementType.Int2 => TensorProto.Types.DataType.Int2,
        _ => throw new ArgumentException($"ONNX has no {type.DisplayName()} type.", nameof(type)),
    });
}

namespace Quantize.Kernels.Models.TensorFlow;

/// <summary>Maps TensorFlow <see cref="DataType"/> values to <see cref="TensorElementType"/> and back.</summary>
public static class GraphDefElementTypes
{
    /// <summary>
    /// The element type of a TensorFlow data type (reference types count as their value type);
    /// <see cref="TensorElementType.Undefined"/> for types we do not model (resource, variant, int4).
    /// </summary>
    public static TensorElementType ToElementType(DataType dtype)
    {
        int value = (int)dtype;
        if (value > 100) value -= 100; // reference types hold the same values
        return (DataType)value switch
        {
            DataType.DtFloat => TensorElementType.Float32,
            DataType.DtDouble => TensorElementType.Float64,
            DataType.DtInt32 => TensorElementType.Int32,
            DataType.DtUint8 => TensorElementType.UInt8,
            DataType.DtInt16 => TensorElementType.Int16,
            DataType.DtInt8 => TensorElementType.Int8,
            DataType.DtString => TensorElementType.String,
            DataType.DtComplex64 => TensorElementType.Complex64,
            DataType.DtInt64 => TensorElementType.Int64,
            DataType.DtBool => TensorElementType.Bool,
            DataType.DtQint8 => TensorElementType.QInt8,
            DataType.DtQuint8 => TensorElementType.QUInt8,
            DataType.DtQint32 => TensorElementType.QInt32,
            DataType.DtBfloat16 => TensorElementType.BFloat16,
            DataType.DtQint16 => TensorElementType.QInt16,
            DataType.DtQuint16 => TensorElementType.QUInt16,
            DataType.DtUint16 => TensorElementType.UInt16,
            DataType.DtComplex128 => TensorElementType.Complex128,
            DataType.DtHalf => TensorElementType.Float16,
            DataType.DtUint32 => TensorElementType.UInt32,
            DataType.DtUint64 => TensorElementType.UInt64,
            DataType.DtFloat8E5M2 => TensorElementType.Float8E5M2,
            DataType.DtFloat8E4M3Fn => TensorElementType.Float8E4M3FN,
            _ => TensorElementType.Undefined, // resource, variant, and TensorFlow's unpacked int4
        };
    }

    /// <summary>The TensorFlow data type of an element type.</summary>
    /// <exception cref="ArgumentException">TensorFlow has no such type.</exception>
    public static DataType ToDataType(TensorElementType type) => type switch
    {
        TensorElementType.Float32 => DataType.DtFloat,
        TensorElementType.Float64 => DataType.DtDouble,
        TensorElementType.Int32 => DataType.DtInt32,
        TensorElementType.UInt8 => DataType.DtUint8,
        TensorElementType.Int16 => DataType.DtInt16,
        TensorElementType.Int8 => DataType.DtInt8,
        TensorElementType.String => DataType.DtString,
        TensorElementType.Complex64 => DataType.DtComplex64,
        TensorElementType.Int64 => DataType.DtInt64,
        TensorElementType.Bool => DataType.DtBool,
        TensorElementType.QInt8 => DataType.DtQint8,
        TensorElementType.QUInt8 => DataType.DtQuint8,
        TensorElementType.QInt32 => DataType.DtQint32,
        TensorElementType.BFloat16 => DataType.DtBfloat16,
        TensorElementType.QInt16 => DataType.DtQint16,
        TensorElementType.QUInt16 => DataType.DtQuint16,
        TensorElementType.UInt16 => DataType.DtUint16,
        TensorElementType.Complex128 => DataType.DtComplex128,
        TensorElementType.Float16 => DataType.DtHalf,
        TensorElementType.UInt32 => DataType.DtUint32,
        TensorElementType.UInt64 => DataType.DtUint64,
        TensorElementType.Float8E5M2 => DataType.DtFloat8E5M2,
        TensorElementType.Float8E4M3FN => DataType.DtFloat8E4M3Fn,
        _ => throw new ArgumentException($"TensorFlow has no {type.DisplayName()} type.", nameof(type)),
    };
}

using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Google.Protobuf;

namespace Quantize.Kernels.Models.Onnx;

/// <summary>
/// Reads ONNX <c>TensorProto</c> values in every storage form the spec allows: <c>raw_data</c>,
/// the typed <c>*_data</c> fields, and external data files. Sizes are checked against the
/// declared shape before anything is allocated.
/// </summary>
internal static class OnnxTensorCodec
{
    /// <summary>Element type, shape and size of a stored tensor, checked against the data it holds.</summary>
    public static StoredTensorInfo Describe(TensorProto tensor, OnnxModel model, string? nameOverride = null)
    {
        string name = nameOverride ?? tensor.Name;
        string source = model.Source;
        var type = OnnxElementTypes.ToElementType(tensor.DataType);
        if (type == TensorElementType.Undefined)
            throw new InvalidModelException(source, $"tensor '{name}' has data type {tensor.DataType}, which ONNX does not define. Check the model was exported by a recent converter.");

        long[] shape = tensor.Dims.ToArray();
        long count = CountOrThrow(shape, name, source);
        long bytes = type == TensorElementType.String ? 0 : ByteCountOrThrow(type, count, name, source);
        bool external = ExternalDataReference.IsExternal(tensor);

        if (external)
        {
            if (type == TensorElementType.String)
                throw new InvalidModelException(source, $"tensor '{name}' is a string tensor stored as external data, which ONNX does not allow.");
            var reference = ExternalDataReference.Resolve(tensor, model.BaseDirectory, source);
            CheckExternalFile(reference, bytes, name, source);
        }
        else if (tensor.HasRawData)
        {
            if (type == TensorElementType.String)
                throw new InvalidModelException(source, $"tensor '{name}' is a string tensor with raw_data; ONNX stores strings in string_data.");
            if (tensor.RawData.Length != bytes)
                throw SizeMismatch(source, name, type, shape, bytes, $"raw_data holds {tensor.RawData.Length} bytes");
        }
        else
        {
            long stored = TypedFieldCount(tensor, type, out string field);
            long expected = ExpectedTypedCount(type, count);
            if (stored != expected)
                throw SizeMismatch(source, name, type, shape, bytes, stored == 0 ? "it holds no data" : $"{field} holds {stored} values where {expected} are needed");
        }

        return new StoredTensorInfo(name, type, shape, count, bytes, external);
    }

    /// <summary>Decodes a tensor into <see cref="TensorData"/>, reading external data if needed.</summary>
    public static TensorData Read(TensorProto tensor, OnnxModel model)
    {
        var info = Describe(tensor, model);
        if (info.ElementType == TensorElementType.String)
            return TensorData.FromStrings(info.Shape, tensor.StringData.Select(s => s.ToByteArray()).ToArray());
        return new TensorData(info.ElementType, info.Shape, ReadBytes(tensor, info, model));
    }

    /// <summary>The packed little-endian bytes of a non-string tensor whose size <paramref name="info"/> has checked.</summary>
    public static byte[] ReadBytes(TensorProto tensor, StoredTensorInfo info, OnnxModel model)
    {
        if (info.ByteCount > Array.MaxLength)
            throw new InvalidModelException(model.Source, $"tensor '{info.Name}' is {info.ByteCount} bytes, more than one array can hold in memory.");
        if (info.IsExternal)
        {
            var reference = ExternalDataReference.Resolve(tensor, model.BaseDirectory, model.Source);
            return ReadExternal(reference, info.ByteCount, info.Name, model.Source);
        }
        if (tensor.HasRawData) return tensor.RawData.ToByteArray();
        return DecodeTyped(tensor, info);
    }

    private static byte[] DecodeTyped(TensorProto tensor, StoredTensorInfo info)
    {
        var bytes = new byte[info.ByteCount];
        var span = bytes.AsSpan();
        switch (info.ElementType)
        {
            case TensorElementType.Float32:
            case TensorElementType.Complex64:
                MemoryMarshal.AsBytes(UnsafeCollectionOperations.AsSpan(tensor.FloatData)).CopyTo(span);
                break;
            case TensorElementType.Float64:
            case TensorElementType.Complex128:
                MemoryMarshal.AsBytes(UnsafeCollectionOperations.AsSpan(tensor.DoubleData)).CopyTo(span);
                break;
            case TensorElementType.Int64:
                MemoryMarshal.AsBytes(UnsafeCollectionOperations.AsSpan(tensor.Int64Data)).CopyTo(span);
                break;
            case TensorElementType.UInt64:
                MemoryMarshal.AsBytes(UnsafeCollectionOperations.AsSpan(tensor.Uint64Data)).CopyTo(span);
                break;
            case TensorElementType.UInt32:
                for (int i = 0; i < tensor.Uint64Data.Count; i++)
                    BinaryPrimitives.WriteUInt32LittleEndian(span[(i * 4)..], (uint)tensor.Uint64Data[i]);
                break;
            case TensorElementType.Int32:
                MemoryMarshal.AsBytes(UnsafeCollectionOperations.AsSpan(tensor.Int32Data)).CopyTo(span);
                break;
            case TensorElementType.Int16:
            case TensorElementType.UInt16:
            case TensorElementType.Float16:
            case TensorElementType.BFloat16:
                // 16-bit values, and the bit patterns of 16-bit floats, sit in the low half of each int32.
                for (int i = 0; i < tensor.Int32Data.Count; i++)
                    BinaryPrimitives.WriteUInt16LittleEndian(span[(i * 2)..], (ushort)tensor.Int32Data[i]);
                break;
            default:
                // One byte per int32: 8-bit integers, bool, float8 bit patterns, and packed sub-byte types.
                for (int i = 0; i < tensor.Int32Data.Count; i++)
                    span[i] = (byte)tensor.Int32Data[i];
                break;
        }
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Quantize.Kernels needs a little-endian CPU.");
        return bytes;
    }

    private static long TypedFieldCount(TensorProto tensor, TensorElementType type, out string field)
    {
        (field, long count) = type switch
        {
            TensorElementType.Float32 or TensorElementType.Complex64 => ("float_data", tensor.FloatData.Count),
            TensorElementType.Float64 or TensorElementType.Complex128 => ("double_data", tensor.DoubleData.Count),
            TensorElementType.Int64 => ("int64_data", tensor.Int64Data.Count),
            TensorElementType.UInt32 or TensorElementType.UInt64 => ("uint64_data", tensor.Uint64Data.Count),
            TensorElementType.String => ("string_data", tensor.StringData.Count),
            _ => ("int32_data", (long)tensor.Int32Data.Count),
        };
        return count;
    }

    /// <summary>How many typed-field values hold <paramref name="count"/> elements.</summary>
    private static long ExpectedTypedCount(TensorElementType type, long count) => type switch
    {
        TensorElementType.Complex64 or TensorElementType.Complex128 => count * 2,
        // Sub-byte types are packed into bytes first, one byte per int32 value.
        TensorElementType.Int4 or TensorElementType.UInt4 or TensorElementType.Float4E2M1
            or TensorElementType.Int2 or TensorElementType.UInt2 => type.ByteCount(count),
        _ => count,
    };

    private static void CheckExternalFile(ExternalDataReference reference, long bytes, string name, string source)
    {
        var file = new FileInfo(reference.FullPath);
        if (!file.Exists)
            throw new InvalidModelException(source, $"tensor '{name}' keeps its data in '{reference.Location}', which does not exist next to the model. Copy the model together with its data file(s).");
        if (reference.Length is long length && length != bytes)
            throw new InvalidModelException(source, $"tensor '{name}' declares {length} bytes of external data in '{reference.Location}', but its shape and type need {bytes}. Re-export the model.");
        if (reference.Offset > file.Length || file.Length - reference.Offset < bytes)
            throw new InvalidModelException(source, $"external data file '{reference.Location}' is too short for tensor '{name}' ({bytes} bytes at offset {reference.Offset}, file has {file.Length}). The data file may be truncated; copy it again.");
    }

    private static byte[] ReadExternal(ExternalDataReference reference, long bytes, string name, string source)
    {
        try
        {
            using var stream = new FileStream(reference.FullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            if (reference.Offset > stream.Length || stream.Length - reference.Offset < bytes)
                throw new InvalidModelException(source, $"external data file '{reference.Location}' is too short for tensor '{name}' ({bytes} bytes at offset {reference.Offset}, file has {stream.Length}). The data file may be truncated; copy it again.");
            var data = new byte[bytes];
            stream.Position = reference.Offset;
            stream.ReadExactly(data);
            return data;
        }
        catch (IOException e)
        {
            throw new InvalidModelException(source, $"cannot read external data '{reference.Location}' of tensor '{name}': {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new InvalidModelException(source, $"cannot read external data '{reference.Location}' of tensor '{name}': {e.Message}", e);
        }
    }

    /// <summary>Copies the bytes of an external tensor into <paramref name="destination"/> without holding them all in memory.</summary>
    public static void CopyExternal(TensorProto tensor, StoredTensorInfo info, OnnxModel model, Stream destination)
    {
        var reference = ExternalDataReference.Resolve(tensor, model.BaseDirectory, model.Source);
        using var stream = new FileStream(reference.FullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        if (reference.Offset > stream.Length || stream.Length - reference.Offset < info.ByteCount)
            throw new InvalidModelException(model.Source, $"external data file '{reference.Location}' is too short for tensor '{info.Name}'. The data file may be truncated; copy it again.");
        stream.Position = reference.Offset;
        var buffer = new byte[(int)Math.Min(info.ByteCount, 1 << 20)];
        long left = info.ByteCount;
        while (left > 0)
        {
            int chunk = (int)Math.Min(left, buffer.Length);
            stream.ReadExactly(buffer, 0, chunk);
            destination.Write(buffer, 0, chunk);
            left -= chunk;
        }
    }

    internal static long CountOrThrow(long[] shape, string name, string source)
    {
        try
        {
            return TensorData.CountElements(shape);
        }
        catch (Exception e) when (e is ArgumentException or OverflowException)
        {
            throw new InvalidModelException(source, $"tensor '{name}' has an invalid shape {TensorData.FormatShape(shape)} (negative or too many elements).");
        }
    }

    internal static long ByteCountOrThrow(TensorElementType type, long count, string name, string source)
    {
        try
        {
            return type.ByteCount(count);
        }
        catch (OverflowException)
        {
            throw new InvalidModelException(source, $"tensor '{name}' declares {count} elements, too many to store.");
        }
    }

    private static InvalidModelException SizeMismatch(string source, string name, TensorElementType type, long[] shape, long bytes, string found) =>
        new(source, $"tensor '{name}' ({type.DisplayName()} {TensorData.FormatShape(shape)}, {bytes} bytes) does not match its data: {found}. The file may be corrupt; export it again.");

    /// <summary>A copy of the bytes as a protobuf field value.</summary>
    public static ByteString ToByteString(byte[] bytes) => UnsafeByteOperations.UnsafeWrap(bytes);
}

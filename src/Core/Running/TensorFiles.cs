using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Quantize.Core.Calibration;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Running;

/// <summary>
/// Single tensors in files: NumPy <c>.npy</c> arrays (read and written, format 1.0 as <c>numpy.save</c> writes it)
/// and serialized ONNX <c>TensorProto</c> files (read), the two formats model inputs and outputs are exchanged in.
/// </summary>
public static class TensorFiles
{
    private static readonly byte[] NpyMagic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads a tensor from <paramref name="path"/>: a <c>.npy</c> file (recognized by its magic bytes) or a serialized ONNX TensorProto.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is neither, or holds an unsupported type; the message names it.</exception>
    public static Tensor Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: the tensor file does not exist.", path);
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.AsSpan().StartsWith(NpyMagic))
        {
            using var stream = new MemoryStream(bytes, writable: false);
            return NumpyFiles.ReadNpy(stream, path);
        }
        TensorProto proto;
        try
        {
            proto = TensorProto.Parser.ParseFrom(bytes);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"{path}: is neither a NumPy .npy file nor a serialized ONNX TensorProto ({e.Message}).", e);
        }
        string folder = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        var reader = new OnnxModel(new ModelProto { Graph = new GraphProto() }, path, folder);
        try
        {
            return InputData.ToTensor(reader.ReadTensor(proto));
        }
        catch (Exception e) when (e is NotSupportedException or InvalidModelException or ArgumentException or OverflowException)
        {
            throw new InvalidDataException($"{path}: is not a readable ONNX TensorProto: {e.Message}", e);
        }
    }

    /// <summary>
    /// Writes <paramref name="tensor"/> to <paramref name="path"/> as a <c>.npy</c> file (format 1.0, little-endian, C order,
    /// header padded to a multiple of 64 bytes as NumPy does), so <c>numpy.load</c> reads it back.
    /// </summary>
    /// <exception cref="NotSupportedException">The element type has no NumPy equivalent here (strings, 4-bit, 8-bit floats, bfloat16).</exception>
    public static void WriteNpy(string path, Tensor tensor)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = File.Create(path);
        WriteNpy(stream, tensor);
    }

    /// <summary>Writes <paramref name="tensor"/> in <c>.npy</c> format to <paramref name="stream"/>.</summary>
    /// <exception cref="NotSupportedException">The element type has no NumPy equivalent here.</exception>
    public static void WriteNpy(Stream stream, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tensor);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Writing .npy files needs a little-endian machine.");
        string descr = NumpyType(tensor.ElementType);
        string shape = tensor.Rank switch
        {
            0 => "()",
            1 => $"({tensor.Shape[0].ToString(CultureInfo.InvariantCulture)},)",
            _ => "(" + string.Join(", ", tensor.Shape.ToArray().Select(d => d.ToString(CultureInfo.InvariantCulture))) + ")",
        };
        string header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        // Magic (6) + version (2) + length (2) + header + padding + '\n' is a multiple of 64.
        int unpadded = 10 + header.Length + 1;
        header = header + new string(' ', (64 - unpadded % 64) % 64) + "\n";
        if (header.Length > ushort.MaxValue) throw new NotSupportedException($"A tensor of rank {tensor.Rank} needs a .npy header longer than format 1.0 allows.");
        stream.Write(NpyMagic);
        stream.Write([1, 0, (byte)(header.Length & 0xFF), (byte)(header.Length >> 8)]);
        stream.Write(Encoding.Latin1.GetBytes(header));
        stream.Write(DataBytes(tensor));
    }

    /// <summary>The NumPy type string of an element type, as <c>numpy.save</c> writes it.</summary>
    private static string NumpyType(TensorElementType type) => type switch
    {
        TensorElementType.Float32 => "<f4",
        TensorElementType.Float64 => "<f8",
        TensorElementType.Float16 => "<f2",
        TensorElementType.Int8 => "|i1",
        TensorElementType.UInt8 => "|u1",
        TensorElementType.Int16 => "<i2",
        TensorElementType.UInt16 => "<u2",
        TensorElementType.Int32 => "<i4",
        TensorElementType.UInt32 => "<u4",
        TensorElementType.Int64 => "<i8",
        TensorElementType.UInt64 => "<u8",
        TensorElementType.Bool => "|b1",
        _ => throw new NotSupportedException($"Tensors of {type.DisplayName()} cannot be written as .npy files."),
    };

    private static ReadOnlySpan<byte> DataBytes(Tensor tensor) => tensor.ElementType switch
    {
        TensorElementType.Float32 => MemoryMarshal.AsBytes(tensor.AsSpan<float>()),
        TensorElementType.Float64 => MemoryMarshal.AsBytes(tensor.AsSpan<double>()),
        TensorElementType.Float16 => MemoryMarshal.AsBytes(tensor.AsSpan<Half>()),
        TensorElementType.Int8 => MemoryMarshal.AsBytes(tensor.AsSpan<sbyte>()),
        TensorElementType.UInt8 => tensor.AsSpan<byte>(),
        TensorElementType.Int16 => MemoryMarshal.AsBytes(tensor.AsSpan<short>()),
        TensorElementType.UInt16 => MemoryMarshal.AsBytes(tensor.AsSpan<ushort>()),
        TensorElementType.Int32 => MemoryMarshal.AsBytes(tensor.AsSpan<int>()),
        TensorElementType.UInt32 => MemoryMarshal.AsBytes(tensor.AsSpan<uint>()),
        TensorElementType.Int64 => MemoryMarshal.AsBytes(tensor.AsSpan<long>()),
        TensorElementType.UInt64 => MemoryMarshal.AsBytes(tensor.AsSpan<ulong>()),
        // .NET bool is one byte, 0 or 1: the layout of NumPy's bool_.
        TensorElementType.Bool => MemoryMarshal.AsBytes(tensor.AsSpan<bool>()),
        var other => throw new NotSupportedException($"Tensors of {other.DisplayName()} cannot be written as .npy files."),
    };
}

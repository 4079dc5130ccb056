using System.Globalization;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Calibration;

/// <summary>
/// Reads NumPy arrays: <c>.npy</c> files (format versions 1.0, 2.0 and 3.0, as the NumPy format document
/// <c>numpy.lib.format</c> describes them) and <c>.npz</c> archives (a zip of <c>NAME.npy</c> entries,
/// stored or deflated). Little-endian float16/32/64, int8/32/64, uint8 and bool arrays in C order.
/// </summary>
internal static class NumpyFiles
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    private const string Supported = "float32, float64, float16, int64, int32, int8, uint8 or bool";

    /// <summary>Reads one <c>.npy</c> file.</summary>
    /// <exception cref="InvalidDataException">The file is unreadable or holds something unsupported; the message names it.</exception>
    public static Tensor ReadNpy(string path)
    {
        Stream stream;
        try
        {
            stream = File.OpenRead(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{path}: cannot be read: {e.Message}", e);
        }
        using (stream) return ReadNpy(stream, path);
    }

    /// <summary>Reads the arrays named <paramref name="names"/> from a <c>.npz</c> archive (others are not decoded).</summary>
    /// <exception cref="InvalidDataException">The archive is unreadable, lacks an array or holds an unsupported one.</exception>
    public static Dictionary<string, Tensor> ReadNpz(string path, IEnumerable<string> names)
    {
        ZipArchive archive;
        try
        {
            archive = ZipFile.OpenRead(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new InvalidDataException($"{path}: cannot be read as a .npz (zip) archive: {e.Message} Write it with numpy.savez or numpy.savez_compressed.", e);
        }
        using (archive)
        {
            var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (string name in names)
            {
                var entry = archive.GetEntry(name + ".npy") ?? throw new InvalidDataException(
                    $"{path}: has no array '{name}' (it holds {Describe(archive)}). Save each model input under its name, e.g. numpy.savez(path, {name}=array).");
                string source = $"{path} (array '{name}')";
                Stream stream;
                try
                {
                    stream = entry.Open();
                }
                catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException)
                {
                    throw new InvalidDataException($"{source}: cannot be opened: {e.Message} Write the archive with numpy.savez or numpy.savez_compressed.", e);
                }
                using (stream) result[name] = ReadNpy(stream, source);
            }
            return result;
        }
    }

    /// <summary>Reads one array in <c>.npy</c> format from <paramref name="stream"/>; <paramref name="source"/> names it in errors.</summary>
    public static Tensor ReadNpy(Stream stream, string source)
    {
        Span<byte> prefix = stackalloc byte[8];
        Fill(stream, prefix, source, "its header");
        if (!prefix[..6].SequenceEqual(Magic))
            throw new InvalidDataException($"{source}: is not a NumPy .npy file (it does not start with \\x93NUMPY). Write it with numpy.save.");
        int major = prefix[6], minor = prefix[7];
        int lengthBytes = major switch
        {
            1 => 2,
            2 or 3 => 4,
            _ => throw new InvalidDataException($"{source}: .npy format version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)."),
        };
        Span<byte> lengthField = stackalloc byte[4];
        Fill(stream, lengthField[..lengthBytes], source, "its header length");
        long headerLength = lengthBytes == 2 ? BitConverter.ToUInt16(lengthField) : BitConverter.ToUInt32(lengthField);
        if (headerLength > 1 << 20)
            throw new InvalidDataException($"{source}: the header claims {headerLength} bytes; the file is damaged.");
        var headerBytes = new byte[headerLength];
        Fill(stream, headerBytes, source, "its header");
        // Versions 1 and 2 write the header in latin-1, version 3 in UTF-8.
        string header = major == 3 ? Encoding.UTF8.GetString(headerBytes) : Encoding.Latin1.GetString(headerBytes);

        var (descr, fortranOrder, shape) = ParseHeader(header, source);
        if (fortranOrder)
            throw new InvalidDataException($"{source}: the array is in Fortran (column-major) order; save a C-order copy (numpy.ascontiguousarray(a)).");
        var type = ElementType(descr, source);
        long elements = 1;
        foreach (int size in shape) elements = Math.Min(elements * size, int.MaxValue);
        if (elements * ElementSize(type) > Array.MaxLength)
            throw new InvalidDataException($"{source}: a {type.DisplayName()} array of shape {Format(shape)} is too large to read.");
        int count = (int)elements;
        var data = Array.CreateInstance(type == TensorElementType.Bool ? typeof(byte) : Tensor.StorageType(type), count);
        var bytes = MemoryMarshal.CreateSpan(ref MemoryMarshal.GetArrayDataReference(data), count * ElementSize(type));
        Fill(stream, bytes, source, $"its data ({count} elements of {type.DisplayName()}, shape {Format(shape)})");
        if (HasMore(stream, source))
            throw new InvalidDataException($"{source}: has bytes after the data of a {type.DisplayName()} array of shape {Format(shape)}; the file is damaged.");
        return type == TensorElementType.Bool
            ? Tensor.Create(((byte[])data).Select(b => b != 0).ToArray(), shape)
            : CreateTensor(data, type, shape);
    }

    private static bool HasMore(Stream stream, string source)
    {
        Span<byte> one = stackalloc byte[1];
        try
        {
            return stream.Read(one) > 0;
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            throw new InvalidDataException($"{source}: cannot be read after its data: {e.Message}", e);
        }
    }

    // By element type, not by array pattern: the runtime lets a byte[] pass as an sbyte[] and the reverse.
    private static Tensor CreateTensor(Array data, TensorElementType type, int[] shape) => type switch
    {
        TensorElementType.Float32 => Tensor.Create((float[])data, shape),
        TensorElementType.Float64 => Tensor.Create((double[])data, shape),
        TensorElementType.Float16 => Tensor.Create((Half[])data, shape),
        TensorElementType.Int64 => Tensor.Create((long[])data, shape),
        TensorElementType.Int32 => Tensor.Create((int[])data, shape),
        TensorElementType.Int8 => Tensor.Create((sbyte[])data, shape),
        TensorElementType.UInt8 => Tensor.Create((byte[])data, shape),
        _ => throw new InvalidOperationException($"No tensor for {type}."),
    };

    private static int ElementSize(TensorElementType type) => type switch
    {
        TensorElementType.Float64 or TensorElementType.Int64 => 8,
        TensorElementType.Float32 or TensorElementType.Int32 => 4,
        TensorElementType.Float16 => 2,
        _ => 1,
    };

    /// <summary>The element type of a NumPy type string such as <c>&lt;f4</c> or <c>|u1</c>.</summary>
    private static TensorElementType ElementType(string descr, string source)
    {
        if (descr.Length < 2)
            throw new InvalidDataException($"{source}: dtype '{descr}' is not a NumPy type string.");
        char order = descr[0];
        var type = descr[1..] switch
        {
            "f4" => TensorElementType.Float32,
            "f8" => TensorElementType.Float64,
            "f2" => TensorElementType.Float16,
            "i8" => TensorElementType.Int64,
            "i4" => TensorElementType.Int32,
            "i1" => TensorElementType.Int8,
            "u1" => TensorElementType.UInt8,
            "b1" => TensorElementType.Bool,
            _ => throw new InvalidDataException($"{source}: dtype '{descr}' is not supported: use {Supported}."),
        };
        if (order is not ('<' or '>' or '|' or '='))
            throw new InvalidDataException($"{source}: dtype '{descr}' has no byte order mark.");
        if (ElementSize(type) > 1 && order == '>')
            throw new InvalidDataException($"{source}: the array is big-endian ('{descr}'); save it little-endian, e.g. a.astype('<{descr[1..]}').");
        if (ElementSize(type) > 1 && order == '=' && !BitConverter.IsLittleEndian)
            throw new InvalidDataException($"{source}: native byte order ('{descr}') is big-endian here; save it little-endian ('<{descr[1..]}').");
        return type;
    }

    /// <summary>Parses the header, a Python dict literal: <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (1, 3), }</c>.</summary>
    private static (string Descr, bool FortranOrder, int[] Shape) ParseHeader(string header, string source)
    {
        object? parsed;
        try
        {
            var parser = new PythonLiteral(header);
            parsed = parser.ParseValue();
            parser.ExpectEnd();
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"{source}: the .npy header is not a Python dict literal ({e.Message}): {header.Trim()}", e);
        }
        if (parsed is not Dictionary<string, object> dict)
            throw new InvalidDataException($"{source}: the .npy header is not a dict: {header.Trim()}");
        if (!dict.TryGetValue("descr", out var descr) || !dict.TryGetValue("fortran_order", out var fortran) || !dict.TryGetValue("shape", out var shape))
            throw new InvalidDataException($"{source}: the .npy header lacks 'descr', 'fortran_order' or 'shape': {header.Trim()}");
        if (descr is not string typeString)
            throw new InvalidDataException($"{source}: dtype {Show(descr)} is a structured or unusual dtype; save a plain array of {Supported}.");
        if (fortran is not bool fortranOrder)
            throw new InvalidDataException($"{source}: 'fortran_order' is {Show(fortran)}, not True or False.");
        if (shape is not List<object> dims || dims.Any(d => d is not long))
            throw new InvalidDataException($"{source}: 'shape' is {Show(shape)}, not a tuple of integers.");
        var sizes = new int[dims.Count];
        for (int i = 0; i < sizes.Length; i++)
        {
            long size = (long)dims[i];
            if (size < 0 || size > int.MaxValue)
                throw new InvalidDataException($"{source}: dimension {size} of the shape is out of range.");
            sizes[i] = (int)size;
        }
        return (typeString, fortranOrder, sizes);
    }

    private static string Show(object? value) => value switch
    {
        null => "None",
        string s => $"'{s}'",
        List<object> list => "(" + string.Join(", ", list.Select(Show)) + ")",
        Dictionary<string, object> => "a dict",
        var other => Convert.ToString(other, CultureInfo.InvariantCulture) ?? "?",
    };

    private static string Describe(ZipArchive archive)
    {
        var names = archive.Entries.Select(e => e.FullName.EndsWith(".npy", StringComparison.Ordinal) ? e.FullName[..^4] : e.FullName).ToList();
        return names.Count == 0 ? "no arrays" : string.Join(", ", names.Take(10).Select(n => $"'{n}'")) + (names.Count > 10 ? ", ..." : "");
    }

    internal static string Format(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";

    private static void Fill(Stream stream, Span<byte> buffer, string source, string what)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int read;
            try
            {
                read = stream.Read(buffer[total..]);
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                throw new InvalidDataException($"{source}: cannot be read ({what}): {e.Message}", e);
            }
            if (read == 0)
                throw new InvalidDataException($"{source}: ends inside {what} ({total} of {buffer.Length} bytes); the file is truncated.");
            total += read;
        }
    }

    /// <summary>
    /// Just enough of Python's literal syntax for .npy headers: dicts, tuples and lists, quoted strings,
    /// integers (with Python 2's optional L suffix), True, False and None.
    /// </summary>
    private sealed class PythonLiteral(string text)
    {
        private int _position;

        public object? ParseValue()
        {
            SkipSpace();
            if (_position >= text.Length) throw new FormatException("it ends early");
            char c = text[_position];
            switch (c)
            {
                case '{': return ParseDict();
                case '(': return ParseSequence(')');
                case '[': return ParseSequence(']');
                case '\'' or '"': return ParseString();
            }
            if (c == '-' || char.IsAsciiDigit(c)) return ParseInteger();
            if (TryWord("True")) return true;
            if (TryWord("False")) return false;
            if (TryWord("None")) return null;
            throw new FormatException($"unexpected '{c}' at {_position}");
        }

        public void ExpectEnd()
        {
            SkipSpace();
            if (_position < text.Length) throw new FormatException($"unexpected '{text[_position]}' after the value");
        }

        private Dictionary<string, object> ParseDict()
        {
            _position++; // {
            var dict = new Dictionary<string, object>(StringComparer.Ordinal);
            while (true)
            {
                SkipSpace();
                if (Take('}')) return dict;
                if (ParseValue() is not string key) throw new FormatException("a dict key is not a string");
                SkipSpace();
                if (!Take(':')) throw new FormatException($"no ':' after key '{key}'");
                dict[key] = ParseValue()!;
                SkipSpace();
                if (Take('}')) return dict;
                if (!Take(',')) throw new FormatException($"no ',' after the value of '{key}'");
            }
        }

        private List<object> ParseSequence(char close)
        {
            _position++; // ( or [
            var items = new List<object>();
            while (true)
            {
                SkipSpace();
                if (Take(close)) return items;
                items.Add(ParseValue()!);
                SkipSpace();
                if (Take(close)) return items;
                if (!Take(',')) throw new FormatException($"no ',' or '{close}' in a sequence");
            }
        }

        private string ParseString()
        {
            char quote = text[_position++];
            var value = new StringBuilder();
            while (_position < text.Length && text[_position] != quote)
            {
                if (text[_position] == '\\' && _position + 1 < text.Length) _position++;
                value.Append(text[_position++]);
            }
            if (!Take(quote)) throw new FormatException("a string is not closed");
            return value.ToString();
        }

        private long ParseInteger()
        {
            int start = _position;
            if (text[_position] == '-') _position++;
            while (_position < text.Length && char.IsAsciiDigit(text[_position])) _position++;
            if (!long.TryParse(text.AsSpan(start, _position - start), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
                throw new FormatException($"'{text[start.._position]}' is not an integer");
            if (_position < text.Length && text[_position] is 'L' or 'l') _position++;
            return value;
        }

        private bool TryWord(string word)
        {
            if (string.CompareOrdinal(text, _position, word, 0, word.Length) != 0) return false;
            _position += word.Length;
            return true;
        }

        private bool Take(char c)
        {
            if (_position >= text.Length || text[_position] != c) return false;
            _position++;
            return true;
        }

        private void SkipSpace()
        {
            while (_position < text.Length && char.IsWhiteSpace(text[_position])) _position++;
        }
    }
}
